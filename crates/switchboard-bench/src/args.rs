//! A tiny command-line parser shared by the suites: flags and `--name value` options, nothing more.
//!
//! The workspace has no argument-parsing crate and the benchmarks need only a handful of options,
//! so each suite takes what it knows from [`Args`] and then calls [`Args::finish`], which turns
//! anything left over into a usage error instead of silently ignoring a typo.

use std::str::FromStr;

/// A mistake on the command line; `main` prints it with the usage text and exits with status 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

/// The arguments after the suite name, consumed option by option.
#[derive(Debug)]
pub(crate) struct Args {
    rest: Vec<String>,
}

impl Args {
    pub(crate) fn new(args: impl IntoIterator<Item = String>) -> Args {
        Args {
            rest: args.into_iter().collect(),
        }
    }

    /// Whether the flag `name` was given (it may be given more than once).
    pub(crate) fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|arg| arg != name);
        self.rest.len() != before
    }

    /// The value of `--name value` or `--name=value`, parsed; `None` when absent. The last
    /// occurrence wins.
    pub(crate) fn value<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, UsageError> {
        let mut found = None;
        let mut i = 0;
        while i < self.rest.len() {
            let arg = &self.rest[i];
            if arg == name {
                if i + 1 >= self.rest.len() {
                    return Err(UsageError(format!("{name} needs a value")));
                }
                found = Some(self.rest.remove(i + 1));
                self.rest.remove(i);
            } else if let Some(value) = arg
                .strip_prefix(name)
                .and_then(|tail| tail.strip_prefix('='))
            {
                found = Some(value.to_owned());
                self.rest.remove(i);
            } else {
                i += 1;
            }
        }
        found
            .map(|raw| {
                raw.parse()
                    .map_err(|_| UsageError(format!("{name}: `{raw}` is not a valid value")))
            })
            .transpose()
    }

    /// Like [`Args::value`], for counts that must be at least 1.
    pub(crate) fn count(&mut self, name: &str) -> Result<Option<u64>, UsageError> {
        match self.value::<u64>(name)? {
            Some(0) => Err(UsageError(format!("{name} must be at least 1"))),
            other => Ok(other),
        }
    }

    /// Refuses whatever no one asked for.
    pub(crate) fn finish(self) -> Result<(), UsageError> {
        match self.rest.first() {
            None => Ok(()),
            Some(arg) => Err(UsageError(format!("unexpected argument `{arg}`"))),
        }
    }
}
