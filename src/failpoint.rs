//! Fail points for crash-safety tests. They exist only in builds with the `failpoints`
//! feature (the test command enables it); release builds carry no trace of them.

/// The armed fail point, if any (set from `--failpoint` at start-up).
#[derive(Clone, Debug, Default)]
pub struct Failpoints {
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    armed: Option<String>,
}

impl Failpoints {
    /// Arms `name` (e.g. `after-create-key`).
    pub fn armed(name: Option<String>) -> Self {
        Self { armed: name }
    }

    /// Kills the process on the spot, as a crash would, when `name` is armed.
    pub fn hit(&self, name: &str) {
        #[cfg(feature = "failpoints")]
        if self.armed.as_deref() == Some(name) {
            eprintln!("failpoint {name}: aborting the process");
            std::process::abort();
        }
        let _ = name;
    }
}
