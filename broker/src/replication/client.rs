//! [`LeaderConnection`]: the follower's side of the Kafka protocol, just enough to fetch from
//! a leader: connect, ApiVersions, then one request at a time with its response.
//!
//! Wire format (as the broker's server reads it): a frame is a 4-byte big-endian size and
//! that many bytes — the request header (api key, version, correlation id, client id; tagged
//! fields from header v2) and the body. A response frame holds the response header
//! (correlation id) and the body. Messages are encoded and decoded by `kafka-protocol`.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The largest response frame accepted. A fetch response is bounded by
/// `replica.fetch.response.max.bytes`, except that a first batch larger than that still comes
/// whole (KIP-74); this only stops a corrupt size from allocating without bound.
const MAX_RESPONSE_FRAME: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} to {addr} timed out after {timeout:?} (replica.socket.timeout.ms)")]
    Timeout {
        what: &'static str,
        addr: String,
        timeout: Duration,
    },
    #[error("I/O with {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode {api:?} v{version}: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("malformed {api:?} v{version} response from {addr}: {reason}")]
    Decode {
        api: ApiKey,
        version: i16,
        addr: String,
        reason: String,
    },
    #[error("response frame of {size} bytes from {addr} is out of bounds")]
    FrameSize { size: i32, addr: String },
    #[error("response from {addr} has correlation id {got}, expected {expected}")]
    Correlation {
        addr: String,
        expected: i32,
        got: i32,
    },
    #[error("{addr} supports no {api:?} version in {min}..={max}")]
    Unsupported {
        api: ApiKey,
        min: i16,
        max: i16,
        addr: String,
    },
    #[error("ApiVersions to {addr} failed with error code {code}")]
    ApiVersions { addr: String, code: i16 },
}

/// A connection to a partition leader. One request is in flight at a time.
#[derive(Debug)]
pub struct LeaderConnection {
    addr: String,
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    client_id: StrBytes,
    next_correlation: i32,
    timeout: Duration,
    /// What the leader supports, by API key.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl LeaderConnection {
    /// Connects to `host:port` and learns the leader's API versions. `timeout` bounds the
    /// connect and every request (`replica.socket.timeout.ms`).
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: String,
        timeout: Duration,
    ) -> Result<LeaderConnection, ClientError> {
        let addr = format!("{host}:{port}");
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "connect",
                addr: addr.clone(),
                timeout,
            })?
            .map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut connection = LeaderConnection {
            addr,
            read: BufReader::with_capacity(64 * 1024, read),
            write,
            client_id: StrBytes::from_string(client_id),
            next_correlation: 0,
            timeout,
            versions: BTreeMap::new(),
        };
        let response: ApiVersionsResponse =
            connection.send(0, &ApiVersionsRequest::default()).await?;
        if response.error_code != 0 {
            return Err(ClientError::ApiVersions {
                addr: connection.addr,
                code: response.error_code,
            });
        }
        connection.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(connection)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `api` both sides support, given ours as `min..=max`.
    pub fn version(&self, api: ApiKey, min: i16, max: i16) -> Result<i16, ClientError> {
        let unsupported = || ClientError::Unsupported {
            api,
            min,
            max,
            addr: self.addr.clone(),
        };
        let &(theirs_min, theirs_max) = self.versions.get(&(api as i16)).ok_or_else(unsupported)?;
        let version = max.min(theirs_max);
        if version < min.max(theirs_min) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Sends `request` as `version` and reads its response.
    pub async fn send<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let api = ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions);
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = self.encode(api, version, correlation, request)?;
        let timeout = self.timeout;
        let exchange = async {
            self.write.write_all(&frame).await?;
            let size = self.read.read_i32().await?;
            if size < 4 || size as usize > MAX_RESPONSE_FRAME {
                return Ok(Err(size));
            }
            // Read into uninitialised capacity, as the server reads requests: fetch responses
            // are large and zero-filling them first is wasted work.
            let size = size as usize;
            let mut body = BytesMut::with_capacity(size);
            while body.len() < size {
                let missing = size - body.len();
                if self.read.read_buf(&mut (&mut body).limit(missing)).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok::<_, io::Error>(Ok(body.freeze()))
        };
        let body = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                what: "request",
                addr: self.addr.clone(),
                timeout,
            })?
            .map_err(|source| ClientError::Io {
                addr: self.addr.clone(),
                source,
            })?
            .map_err(|size| ClientError::FrameSize {
                size,
                addr: self.addr.clone(),
            })?;
        self.decode::<R>(api, version, correlation, body)
    }

    fn encode<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        correlation: i32,
        request: &R,
    ) -> Result<Bytes, ClientError> {
        let encode_error = |e: anyhow::Error| ClientError::Encode {
            api,
            version,
            reason: e.to_string(),
        };
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut buf, R::header_version(version))
            .map_err(encode_error)?;
        request.encode(&mut buf, version).map_err(encode_error)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok(buf.freeze())
    }

    fn decode<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        correlation: i32,
        mut body: Bytes,
    ) -> Result<R::Response, ClientError> {
        let decode_error = |e: anyhow::Error| ClientError::Decode {
            api,
            version,
            addr: self.addr.clone(),
            reason: e.to_string(),
        };
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(decode_error)?;
        if header.correlation_id != correlation {
            return Err(ClientError::Correlation {
                addr: self.addr.clone(),
                expected: correlation,
                got: header.correlation_id,
            });
        }
        R::Response::decode(&mut body, version).map_err(decode_error)
    }
}
