//! Pure rules: statuses and transitions, principals, text handling, errors.
//! Nothing here knows about the wire or the database.
/// A fieldless enum stored and sent as its upper-case name.
/// With labels, `Variant = "NAME" ("etiqueta", "label")`, it also gets the
/// customer-facing `label` in each language.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident {
        $($variant:ident = $text:literal ($es:literal, $en:literal)),+ $(,)?
    }) => {
        string_enum!($(#[$meta])* $name { $($variant = $text),+ });

        impl $name {
            /// The customer-facing label.
            pub fn label(self, locale: $crate::domain::principal::Locale) -> &'static str {
                use $crate::domain::principal::Locale;
                match (self, locale) {
                    $(($name::$variant, Locale::Es) => $es,
                      ($name::$variant, Locale::En) => $en,)+
                }
            }

            /// The stored names of the variants whose label, in either
            /// language, holds `folded` (a `text::fold`ed search term).
            pub fn named_by(folded: &str) -> Vec<String> {
                use $crate::domain::principal::Locale;
                Self::ALL
                    .iter()
                    .filter(|v| {
                        [Locale::Es, Locale::En]
                            .into_iter()
                            .any(|l| $crate::domain::text::fold(v.label(l)).contains(folded))
                    })
                    .map(|v| v.as_str().to_owned())
                    .collect()
            }
        }

        impl $crate::domain::Labelled for $name {
            fn label(self, locale: $crate::domain::principal::Locale) -> &'static str {
                $name::label(self, locale)
            }
        }
    };
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database and used in events.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl $crate::domain::Code for $name {
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn parse(text: &str) -> Option<Self> {
                $name::parse(text)
            }
        }
    };
}

/// What `string_enum!` gives an enum: its stored name and back.
pub trait Code: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    fn as_str(self) -> &'static str;
    fn parse(text: &str) -> Option<Self>;
}

/// What `string_enum!` gives an enum declared with labels.
pub trait Labelled: Code {
    fn label(self, locale: principal::Locale) -> &'static str;
}

pub mod calendar;
pub mod catalog;
pub mod clock;
pub mod consultation;
pub mod error;
pub mod event;
pub mod incident;
pub mod mail;
pub mod notify;
pub mod notify_rules;
pub mod principal;
pub mod text;
pub mod ticket;

pub use error::{Error, FieldViolation, Result};
