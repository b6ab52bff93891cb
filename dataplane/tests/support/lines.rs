//! The lines a child process prints, kept: a test waits for the line that says something happened (a connection,
//! a call, a log event) instead of sleeping, and looks back at all of them in its assertions and failure messages.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Lines {
    seen: watch::Receiver<Vec<String>>,
    /// What the lines come from, for failure messages.
    source: &'static str,
}

impl Lines {
    /// Reads `reader` to its end in a task; each line is passed to `tap` (for progress counters) and kept. With
    /// `echo`, lines are also written to stderr, where `cargo test` shows them for a failing test.
    pub fn follow(
        reader: impl AsyncRead + Unpin + Send + 'static,
        source: &'static str,
        echo: bool,
        mut tap: impl FnMut(&str) + Send + 'static,
    ) -> Lines {
        let (tx, seen) = watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{source}] {line}");
                }
                tap(&line);
                tx.send_modify(|seen| seen.push(line));
            }
        });
        Lines { seen, source }
    }

    pub fn all(&self) -> Vec<String> {
        self.seen.borrow().clone()
    }

    /// The lines so far that start with `prefix`.
    pub fn starting_with(&self, prefix: &str) -> Vec<String> {
        self.seen.borrow().iter().filter(|l| l.starts_with(prefix)).cloned().collect()
    }

    /// Waits until `count` lines satisfy `matches`, and returns the last of them; panics after `within`, listing
    /// every line seen, or if the process closed its output first.
    pub async fn wait_for_nth(&self, count: usize, within: Duration, matches: impl Fn(&str) -> bool) -> String {
        let mut seen = self.seen.clone();
        let found = tokio::time::timeout(within, seen.wait_for(|l| l.iter().filter(|l| matches(l)).count() >= count))
            .await
            .map(|found| found.map(|lines| lines.iter().filter(|l| matches(l)).nth(count - 1).cloned().unwrap()));
        match found {
            Ok(Ok(line)) => line,
            Ok(Err(_)) => panic!("{} ended before the line waited for; it printed:\n{}", self.source, self.dump()),
            Err(_) => panic!("{} printed no such line within {within:?}; it printed:\n{}", self.source, self.dump()),
        }
    }

    /// The first line starting with `prefix`, waiting for it up to `within`.
    pub async fn wait_for(&self, prefix: &str, within: Duration) -> String {
        self.wait_for_nth(1, within, |l| l.starts_with(prefix)).await
    }

    fn dump(&self) -> String {
        self.all().join("\n")
    }
}
