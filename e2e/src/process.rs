//! The processes the suite starts (upstreams, dataplane, controller). Each is killed by its pid when its handle is
//! dropped, so a failing test leaves nothing running; its output is collected line by line, both for readiness
//! signals (`listening …`, `holdfast dataplane started`) and to print when the test fails.

use crate::poll;
use anyhow::Context;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Lines printed on failure, per process.
const TAIL: usize = 60;

/// Output of a process, in order of arrival, and how many of its two streams have ended.
#[derive(Default)]
struct Output {
    lines: Vec<String>,
    closed: usize,
}

/// A child process, killed (SIGKILL, by pid) and reaped on drop.
pub struct Process {
    name: String,
    child: Child,
    output: Arc<Mutex<Output>>,
}

impl Process {
    /// Starts `command` with stdout and stderr collected; `name` labels its output.
    pub fn spawn(name: &str, mut command: Command) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {name}: {command:?}"))?;
        let output = Arc::new(Mutex::new(Output::default()));
        let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let output = output.clone();
            // A thread per stream keeps the pipes drained, so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lock(&output).lines.push(line);
                }
                lock(&output).closed += 1;
            });
        }
        Ok(Process { name: name.to_string(), child, output })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the first output line for which `find` returns a value. Fails early, with the output, when the
    /// process closes its output (it exited) without printing one.
    pub async fn wait_for_line<T>(&self, limit: Duration, find: impl Fn(&str) -> Option<T>) -> anyhow::Result<T> {
        let what = format!("{} to become ready", self.name);
        poll::until(&what, limit, async || {
            let output = lock(&self.output);
            if let Some(found) = output.lines.iter().find_map(|line| find(line)) {
                return Ok(Some(found));
            }
            if output.closed == 2 {
                anyhow::bail!("{} exited; its output:\n{}", self.name, output.lines.join("\n"));
            }
            Ok(None)
        })
        .await
        .with_context(|| format!("output of {} so far:\n{}", self.name, self.tail()))
    }

    /// The last lines of output, for failure messages.
    pub fn tail(&self) -> String {
        let output = lock(&self.output);
        let skip = output.lines.len().saturating_sub(TAIL);
        output.lines[skip..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to this child's pid only; `wait` reaps it so no zombie stays behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- last output of {} (pid {}) ----\n{}", self.name, self.pid(), self.tail());
        }
    }
}

fn lock(output: &Mutex<Output>) -> std::sync::MutexGuard<'_, Output> {
    // A reader thread cannot panic while holding the lock, but a poisoned log is still worth printing.
    output.lock().unwrap_or_else(PoisonError::into_inner)
}
