//! Domain enums with one wire name per value: the strings SQL, JSON and metrics use. The enums
//! stay enums everywhere else.

/// Declares a domain enum with its one wire name per variant: `as_str`, and serde under the same
/// names; `stored` ones (read back from a database) also get `parse`.
macro_rules! wire_enum {
    (stored $(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        wire_enum! { $(#[$doc])* $name { $($(#[$vdoc])* $variant = $text,)* } }

        impl $name {
            /// Every value, in declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &[$name] = &[$($name::$variant),*];

            /// A stored name back as the value.
            pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => anyhow::bail!("`{other}` in the database is not a value izzi writes"),
                }
            }
        }
    };
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        pub(crate) enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// The name stored and shown.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

pub(crate) use wire_enum;
