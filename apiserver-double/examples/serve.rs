//! Runs the API server double until Ctrl-C, for poking at it with kubectl by hand:
//!
//! ```text
//! cargo run -p weir-apiserver-double --example serve -- /tmp/double.kubeconfig
//! kubectl --kubeconfig /tmp/double.kubeconfig get namespaces
//! ```

use std::path::PathBuf;

use weir_apiserver_double::ApiServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("weir-apiserver-double.kubeconfig"));
    let server = ApiServer::start().await;
    server.write_kubeconfig(&path)?;
    println!(
        "serving {} ; kubeconfig written to {}",
        server.url(),
        path.display()
    );
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
