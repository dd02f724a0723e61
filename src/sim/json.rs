//! A tiny ordered JSON tree and writer for the simulator.
//!
//! LogRhythm's field order is part of what the simulator imitates, and the crate's
//! `serde_json::Value` sorts object keys, so bodies are built as [`Node`]s and written
//! here. [`Node::Raw`] splices bytes in verbatim: that is how the hostile scenario
//! serves things no well-behaved serializer would write (a lone surrogate escape,
//! invalid UTF-8, 10 000-deep nesting, `1e99999`). Duplicate keys are possible by
//! pushing a key twice.

/// One JSON value; objects keep insertion order (and may repeat keys).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (written by serde_json; non-finite values become `null`).
    Float(f64),
    /// A string (escaped on output).
    Str(String),
    /// An array.
    Arr(Vec<Node>),
    /// An object in the order given.
    Obj(Vec<(String, Node)>),
    /// Bytes written as they are, with no validation at all.
    Raw(Vec<u8>),
}

impl Node {
    /// Shorthand for a string node.
    pub fn s(v: impl Into<String>) -> Node {
        Node::Str(v.into())
    }

    /// Builds an object from `(key, value)` pairs.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Node)>) -> Node {
        Node::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// For an object: replaces the value of the first `key` (or appends it).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Node::Obj(pairs) = self {
            match pairs.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => pairs.push((key.to_string(), value)),
            }
        }
    }

    /// For an object: the value of the first `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Obj(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Writes this node as JSON text (compact) onto `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Node::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Node::Float(f) => write_serde(out, f),
            Node::Str(s) => write_serde(out, s),
            Node::Arr(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Node::Obj(pairs) => {
                out.push(b'{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_serde(out, k);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
            Node::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }

    /// This node as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

fn write_serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Serializing a str or f64 into a Vec cannot fail; a failure would only mean
    // "write nothing", and `null` keeps the document well-formed in that case.
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_escapes_and_splices_raw() {
        let mut n = Node::obj([
            ("z", Node::Int(1)),
            ("a", Node::s("q\"\n\u{202e}")),
            (
                "m",
                Node::Arr(vec![Node::Null, Node::Bool(true), Node::Float(0.5)]),
            ),
        ]);
        n.set("a", Node::s("x\u{0}"));
        n.set("raw", Node::Raw(b"1e99999".to_vec()));
        assert_eq!(
            String::from_utf8(n.to_bytes()).unwrap(),
            r#"{"z":1,"a":"x\u0000","m":[null,true,0.5],"raw":1e99999}"#
        );
    }
}
