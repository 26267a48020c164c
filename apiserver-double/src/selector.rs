//! Label and field selectors of list, watch and deletecollection requests.
//!
//! Owns the parsers of `labelSelector` (`a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//! `a notin (x)`, `a`, `!a`, comma-separated; all must hold) and `fieldSelector`
//! (`path=value`, `path==value`, `path!=value`). Field selectors are looser than the real
//! server's: any dotted path into the object is accepted (the real server allows
//! `metadata.name`, `metadata.namespace` and a few fields per resource and rejects others).

use serde_json::Value;

/// Why a selector string could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SelectorError {
    #[error("expected a key at position {position}")]
    MissingKey { position: usize },
    #[error("expected an operator after key {key:?}")]
    MissingOperator { key: String },
    #[error("expected '(' after '{op}' for key {key:?}")]
    MissingOpenParen { key: String, op: &'static str },
    #[error("unterminated value list for key {key:?}")]
    UnterminatedList { key: String },
    #[error("expected ',' after the requirement on key {key:?}")]
    MissingComma { key: String },
    #[error("field selector term {term:?} has no '=', '==' or '!='")]
    BadFieldTerm { term: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    requirements: Vec<(String, LabelOp)>,
}

impl LabelSelector {
    pub(crate) fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        let mut p = Parser { s: input, pos: 0 };
        let mut requirements = Vec::new();
        p.skip_ws();
        while !p.done() {
            let negated = p.eat("!");
            p.skip_ws();
            let key = p.word();
            if key.is_empty() {
                return Err(SelectorError::MissingKey { position: p.pos });
            }
            p.skip_ws();
            let op = if negated {
                LabelOp::DoesNotExist
            } else if p.done() || p.peek(",") {
                LabelOp::Exists
            } else if p.eat("==") || p.eat("=") {
                p.skip_ws();
                LabelOp::Equals(p.word())
            } else if p.eat("!=") {
                p.skip_ws();
                LabelOp::NotEquals(p.word())
            } else if p.eat_keyword("notin") {
                LabelOp::NotIn(p.list(&key, "notin")?)
            } else if p.eat_keyword("in") {
                LabelOp::In(p.list(&key, "in")?)
            } else {
                return Err(SelectorError::MissingOperator { key });
            };
            p.skip_ws();
            if !p.done() && !p.eat(",") {
                return Err(SelectorError::MissingComma { key });
            }
            p.skip_ws();
            requirements.push((key, op));
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the labels of `obj` satisfy every requirement.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        self.requirements.iter().all(|(key, op)| {
            let value = labels.get(key).and_then(Value::as_str);
            match op {
                LabelOp::Equals(v) => value == Some(v.as_str()),
                LabelOp::NotEquals(v) => value != Some(v.as_str()),
                LabelOp::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
                LabelOp::NotIn(vs) => !value.is_some_and(|x| vs.iter().any(|v| v == x)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
            }
        })
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn done(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }
    fn peek(&self, token: &str) -> bool {
        self.rest().starts_with(token)
    }
    fn eat(&mut self, token: &str) -> bool {
        let found = self.peek(token);
        if found {
            self.pos += token.len();
        }
        found
    }
    /// `in`/`notin` followed by a space or '(' (a key may start with "in").
    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let rest = self.rest();
        let found = rest.starts_with(keyword)
            && rest[keyword.len()..].starts_with(|c: char| c == '(' || c.is_whitespace());
        if found {
            self.pos += keyword.len();
        }
        found
    }
    fn word(&mut self) -> String {
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || "=!,()".contains(c))
            .unwrap_or(rest.len());
        self.pos += end;
        rest[..end].to_owned()
    }
    fn list(&mut self, key: &str, op: &'static str) -> Result<Vec<String>, SelectorError> {
        self.skip_ws();
        if !self.eat("(") {
            return Err(SelectorError::MissingOpenParen {
                key: key.to_owned(),
                op,
            });
        }
        let mut values = Vec::new();
        loop {
            self.skip_ws();
            let value = self.word();
            if !value.is_empty() {
                values.push(value);
            }
            self.skip_ws();
            if self.eat(")") {
                return Ok(values);
            }
            if !self.eat(",") {
                return Err(SelectorError::UnterminatedList {
                    key: key.to_owned(),
                });
            }
        }
    }
}

/// A parsed `fieldSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    /// (dotted path, expected value, whether the value must equal).
    terms: Vec<(String, String, bool)>,
}

impl FieldSelector {
    pub(crate) fn parse(input: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for term in input.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, v, true)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, v, true)
            } else {
                return Err(SelectorError::BadFieldTerm {
                    term: term.to_owned(),
                });
            };
            terms.push((path.trim().to_owned(), value.trim().to_owned(), equal));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether every term holds; a missing field compares as the empty string.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(path, expected, equal)| {
            let mut v = obj;
            for part in path.split('.') {
                v = &v[part];
            }
            let actual = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *expected) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    #[test]
    fn equality_operators_match_labels() {
        let o = obj(json!({"app": "weir", "tier": "broker"}));
        assert!(sel("app=weir").matches(&o));
        assert!(sel("app==weir,tier=broker").matches(&o));
        assert!(!sel("app=weir,tier=controller").matches(&o));
        assert!(sel("tier!=controller").matches(&o));
        assert!(
            sel("missing!=x").matches(&o),
            "!= holds when the label is absent"
        );
        assert!(sel("").matches(&o));
    }

    #[test]
    fn set_operators_match_labels() {
        let o = obj(json!({"app": "weir"}));
        assert!(sel("app in (weir, other)").matches(&o));
        assert!(!sel("app in (other)").matches(&o));
        assert!(sel("app notin (other)").matches(&o));
        assert!(!sel("app notin (weir)").matches(&o));
        assert!(sel("missing notin (weir)").matches(&o));
        assert!(sel("app").matches(&o));
        assert!(!sel("!app").matches(&o));
        assert!(sel("!missing, app in (weir)").matches(&o));
        assert!(
            sel("inx=1").matches(&obj(json!({"inx": "1"}))),
            "a key may begin with 'in'"
        );
    }

    #[test]
    fn prefixed_keys_parse() {
        let o = obj(json!({"app.kubernetes.io/name": "weir"}));
        assert!(sel("app.kubernetes.io/name=weir").matches(&o));
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        assert!(LabelSelector::parse("app in weir").is_err());
        assert!(LabelSelector::parse("app in (weir").is_err());
        assert!(LabelSelector::parse("=x").is_err());
        assert!(LabelSelector::parse("a=b c=d").is_err());
    }

    #[test]
    fn field_selectors_match_name_namespace_and_other_paths() {
        let o = obj(json!({}));
        let f = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(f("metadata.name=a"));
        assert!(f("metadata.name==a,metadata.namespace=ns"));
        assert!(!f("metadata.namespace!=ns"));
        assert!(f("status.phase=Running"));
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
