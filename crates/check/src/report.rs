//! Diagnostics as values: what objtool would print, kept apart from printing it, so that the
//! corpus harness can compare them and JSON can carry them.

use std::fmt;

/// A problem that makes objtool give up on the whole object (its `return -1`): nothing is
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fatal {
    /// The warning objtool prints before giving up.
    pub warning: Warning,
}

impl Fatal {
    /// A fatal problem with no instruction to point at.
    pub fn new(message: impl Into<String>) -> Self {
        Fatal { warning: Warning { location: None, message: message.into() } }
    }

    /// A fatal problem at `location` (`func+0xoff`).
    pub fn at(location: String, message: impl Into<String>) -> Self {
        Fatal { warning: Warning { location: Some(location), message: message.into() } }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.warning.location {
            Some(loc) => write!(f, "{loc}: {}", self.warning.message),
            None => f.write_str(&self.warning.message),
        }
    }
}

/// One warning, as objtool words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// `func+0xoff` or `section+0xoff`, when the warning is about an instruction.
    pub location: Option<String>,
    /// The message after the location.
    pub message: String,
}

impl Warning {
    /// The line objtool prints for it, for a file called `file`.
    pub fn render(&self, file: &str) -> String {
        match &self.location {
            Some(loc) => format!("{file}: warning: objtool: {loc}: {}", self.message),
            None => format!("{file}: warning: objtool: {}", self.message),
        }
    }
}
