//! A request body read only at its top level: each member's value stays raw bytes until asked
//! for, so forwarding never re-serialises what it does not change. Also [`without_values`],
//! which keeps the text of prompts and answers out of logged JSON errors.

use std::borrow::Cow;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object body, its top-level members in order, values unparsed.
#[derive(Debug)]
pub(crate) struct Body<'a> {
    pub(crate) raw: &'a [u8],
    pub(crate) fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Why a body is not a usable JSON object; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BodyError(pub(crate) String);

impl<'a> Body<'a> {
    /// Parses the top level of `raw`: it must be one JSON object (valid UTF-8, nothing after).
    pub(crate) fn parse(raw: &'a [u8]) -> Result<Self, BodyError> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(16);
                while let Some(entry) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(fields)
            }
        }
        // Syntax errors say where, never what; a wrong type would quote the body back.
        let invalid = |e: serde_json::Error| {
            BodyError(if e.is_data() {
                "The request body must be a JSON object.".to_owned()
            } else {
                format!("The request body is not valid JSON: {e}.")
            })
        };
        let mut de = serde_json::Deserializer::from_slice(raw);
        let fields = de.deserialize_map(Fields).map_err(invalid)?;
        de.end().map_err(invalid)?;
        if let Some(name) = repeated(&fields) {
            // izzi would read the first and an upstream the last: refuse rather than guess.
            let name: String = name.chars().take(64).collect();
            return Err(BodyError(format!(
                "The request body has the member `{name}` more than once; send each member once."
            )));
        }
        Ok(Self { raw, fields })
    }

    /// The raw value of a top-level member.
    pub(crate) fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// A top-level member parsed as `T`; absent or `null` is `None`, a wrong type an error that
    /// names the member and the type wanted.
    pub(crate) fn field<T: serde::Deserialize<'a>>(
        &self,
        name: &str,
        wanted: &str,
    ) -> Result<Option<T>, BodyError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get())
                .map(Some)
                .map_err(|_| BodyError(format!("`{name}` must be {wanted}."))),
        }
    }

    /// Whether a top-level member is present and a JSON array.
    pub(crate) fn is_array(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.get().starts_with('['))
    }

    /// The body with its top-level `model` set to `model`: borrowed when it already is, else
    /// rebuilt from the raw members (unknown fields and number formats survive exactly).
    pub(crate) fn with_model(&self, model: &str) -> Cow<'a, [u8]> {
        self.with_model_and(model, None)
    }

    /// [`Self::with_model`], plus a string member the body does not have yet, placed after
    /// `model`.
    pub(crate) fn with_model_and(&self, model: &str, added: Option<(&str, &str)>) -> Cow<'a, [u8]> {
        let wanted = serde_json::Value::from(model).to_string();
        let added = added.filter(|(name, _)| self.get(name).is_none());
        if added.is_none() && self.get("model").map(RawValue::get) == Some(wanted.as_str()) {
            return Cow::Borrowed(self.raw);
        }
        let mut out = Vec::with_capacity(self.raw.len() + wanted.len());
        out.push(b'{');
        out.extend_from_slice(b"\"model\":");
        out.extend_from_slice(wanted.as_bytes());
        if let Some((name, value)) = added {
            out.push(b',');
            out.extend_from_slice(serde_json::Value::from(name).to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(serde_json::Value::from(value).to_string().as_bytes());
        }
        for (key, value) in self.fields.iter().filter(|(k, _)| k != "model") {
            out.push(b',');
            out.extend_from_slice(serde_json::Value::from(key.as_ref()).to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        Cow::Owned(out)
    }
}

/// A member name that occurs twice among `fields`, if any: compared pairwise for the usual
/// handful of members, through a set for a body with many.
fn repeated<'a>(fields: &'a [(Cow<'_, str>, &RawValue)]) -> Option<&'a str> {
    const FEW: usize = 32;
    if fields.len() <= FEW {
        return fields
            .iter()
            .enumerate()
            .find(|(i, (name, _))| fields[..*i].iter().any(|(n, _)| n == name))
            .map(|(_, (name, _))| name.as_ref());
    }
    let mut seen = std::collections::HashSet::with_capacity(fields.len());
    fields
        .iter()
        .map(|(name, _)| name.as_ref())
        .find(|name| !seen.insert(*name))
}

/// A serde error message with the strings it quotes (`invalid type: string "…"`) taken out:
/// those are the request's or the answer's own text, which logs must not hold.
pub(crate) fn without_values(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        out.push_str(&rest[..start]);
        out.push_str("a string");
        // serde writes the string with `{:?}`: `\"` and `\\` are escapes, a bare `"` ends it.
        let mut chars = rest[start + QUOTED.len()..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(start + QUOTED.len() + i + 1);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return out;
        };
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A member that is a string or a list (`content`, `system`), read in one pass: serde's
/// `untagged` would first copy the whole value, a prompt's text included, into a buffer of its
/// own and then read it again. The wire types read through it with `#[serde(from = "TextOr<_>")]`.
pub(crate) enum TextOr<T> {
    Text(String),
    List(Vec<T>),
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for TextOr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for Either<T> {
            type Value = TextOr<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(TextOr::Text(text.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(TextOr::Text(text))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                let list = serde::Deserialize::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(TextOr::List(list))
            }
        }
        deserializer.deserialize_any(Either(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_or_list_reads_either_and_names_both_when_it_is_neither() {
        let text: TextOr<u8> = serde_json::from_str(r#""a \"quoted\" prompt""#).unwrap();
        assert!(matches!(text, TextOr::Text(t) if t == r#"a "quoted" prompt"#));
        let list: TextOr<u8> = serde_json::from_str("[1, 2]").unwrap();
        assert!(matches!(list, TextOr::List(l) if l == [1, 2]));
        let err = serde_json::from_str::<TextOr<u8>>("5").err().unwrap();
        assert!(
            err.to_string().contains("expected a string or a list"),
            "{err}"
        );
    }

    #[test]
    fn an_added_member_goes_after_model_only_when_absent() {
        let raw = br#"{"model":"m","x":1.50}"#;
        let body = Body::parse(raw).unwrap();
        let out = body.with_model_and("m", Some(("prompt_cache_key", "s\"1")));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"m","prompt_cache_key":"s\"1","x":1.50}"#
        );
        let raw = br#"{"prompt_cache_key":"mine","model":"m"}"#;
        let body = Body::parse(raw).unwrap();
        let out = body.with_model_and("m", Some(("prompt_cache_key", "s")));
        assert!(matches!(out, Cow::Borrowed(_)));
    }

    #[test]
    fn with_model_keeps_everything_else_exactly() {
        let raw = br#"{"model":"sonnet","x_unknown":{"deep":[1,2.50,"\u00e9"]},"stream":true}"#;
        let body = Body::parse(raw).unwrap();
        let out = body.with_model("claude-sonnet-4-20250514");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"claude-sonnet-4-20250514","x_unknown":{"deep":[1,2.50,"\u00e9"]},"stream":true}"#
        );
        let again = Body::parse(&out).unwrap();
        assert!(matches!(
            again.with_model("claude-sonnet-4-20250514"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for bad in [
            &b"[1]"[..],
            br#"{"model":"a"} x"#,
            br#"{"model":"a""#,
            b"",
            b"{\"m\":\"\xff\"}",
        ] {
            assert!(Body::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_member_given_twice_is_refused_by_name() {
        let err = Body::parse(br#"{"model":"m","max_tokens":1,"messages":[],"max_tokens":30000}"#)
            .unwrap_err();
        assert_eq!(
            err.0,
            "The request body has the member `max_tokens` more than once; send each member once."
        );
        let many: String = (0..100).map(|i| format!("\"f{i}\":1,")).collect();
        let body = format!("{{{many}\"f7\":2}}");
        assert!(Body::parse(body.as_bytes()).unwrap_err().0.contains("`f7`"));
        let body = format!("{{{many}\"last\":2}}");
        assert!(Body::parse(body.as_bytes()).is_ok());
        // Nested members are the upstream's to read; only the top level is izzi's.
        assert!(Body::parse(br#"{"a":{"b":1,"b":2}}"#).is_ok());
    }

    #[test]
    fn errors_never_quote_the_body() {
        for bad in [&br#""secret prompt""#[..], b"[\"secret prompt\"]", b"7"] {
            let err = Body::parse(bad).unwrap_err();
            assert_eq!(err.0, "The request body must be a JSON object.");
        }
        let err = Body::parse(br#"{"a": "secret prompt"#).unwrap_err();
        assert!(
            err.0.contains("line 1") && !err.0.contains("secret"),
            "{}",
            err.0
        );
    }

    #[test]
    fn without_values_drops_quoted_strings_only() {
        let err = serde_json::from_str::<Vec<u8>>(r#"["secret \"prompt\" \\", 2]"#).unwrap_err();
        assert_eq!(
            without_values(&err.to_string()),
            "invalid type: a string, expected u8 at line 1 column 23"
        );
        assert_eq!(
            without_values(r#"a: string "x", b: string "y\\" c"#),
            "a: a string, b: a string c"
        );
        assert_eq!(
            without_values("unknown variant `tool`"),
            "unknown variant `tool`"
        );
        assert_eq!(
            without_values(r#"cut: string "never closed"#),
            "cut: a string"
        );
    }

    #[test]
    fn field_errors_name_the_field() {
        let body = Body::parse(br#"{"model":5,"stream":null}"#).unwrap();
        let err = body.field::<String>("model", "a string").unwrap_err();
        assert_eq!(err.0, "`model` must be a string.");
        assert_eq!(body.field::<bool>("stream", "a boolean").unwrap(), None);
    }
}
