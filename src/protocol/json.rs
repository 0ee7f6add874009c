//! A request body read only at its top level: each member's value stays raw bytes until asked
//! for, so forwarding never re-serialises what it does not change.

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
        let invalid =
            |e: serde_json::Error| BodyError(format!("The request body is not valid JSON: {e}."));
        let mut de = serde_json::Deserializer::from_slice(raw);
        let fields = de.deserialize_map(Fields).map_err(invalid)?;
        de.end().map_err(invalid)?;
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
        let wanted = serde_json::Value::from(model).to_string();
        if self.get("model").map(RawValue::get) == Some(wanted.as_str()) {
            return Cow::Borrowed(self.raw);
        }
        let mut out = Vec::with_capacity(self.raw.len() + wanted.len());
        out.push(b'{');
        out.extend_from_slice(b"\"model\":");
        out.extend_from_slice(wanted.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn field_errors_name_the_field() {
        let body = Body::parse(br#"{"model":5,"stream":null}"#).unwrap();
        let err = body.field::<String>("model", "a string").unwrap_err();
        assert_eq!(err.0, "`model` must be a string.");
        assert_eq!(body.field::<bool>("stream", "a boolean").unwrap(), None);
    }
}
