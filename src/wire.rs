//! Domain enums with one wire name per value: the strings SQL, JSON and metrics use. The enums
//! stay enums everywhere else.

/// Declares a domain enum with its one wire name per variant: `as_str`, `parse` (for what the
/// database holds), and serde under the same names.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        pub(crate) enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &[$name] = &[$($name::$variant),*];

            /// The name stored and shown.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// A stored name back as the value.
            pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => anyhow::bail!("`{other}` in the database is not a value izzi writes"),
                }
            }
        }
    };
}

pub(crate) use wire_enum;
