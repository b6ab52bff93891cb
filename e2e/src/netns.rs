//! Test hosts: network namespaces joined to this machine by a veth pair, with addresses from 198.18.0.0/15 (the
//! benchmarking range, RFC 2544). An upstream inside one is a real host to the API server's eyes: a real API server
//! refuses EndpointSlice addresses in 127.0.0.0/8, and these are not loopback. Needs root (`ip netns add`).
//!
//! Each host gets a /30 of its own: `.1` on this machine's end of the veth, `.2` inside the namespace. The slot
//! that picks the /30 also names the namespace and the veth, so two runs that pick the same slot fail on the
//! names (`File exists`) instead of sharing addresses. `Drop` removes only what this host created.

use anyhow::Context;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// 198.18.0.0/15 holds 32768 /30s; slot 0 (198.18.0.0/30) is never used, so 198.18.0.1 is never assigned here.
const SLOTS: u32 = 32767;
const BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);

/// Whether `addr` is in 198.18.0.0/15, the only range test hosts use.
pub fn in_test_range(addr: Ipv4Addr) -> bool {
    u32::from(addr) & 0xfffe_0000 == BASE
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth pair to this machine, removed on drop.
pub struct TestHost {
    /// The namespace's name (`holdfast-e2e-SLOT`).
    pub netns: String,
    /// This machine's end of the veth.
    pub host_veth: String,
    /// The veth end inside the namespace.
    peer_veth: String,
    /// This machine's address on the veth.
    pub host_addr: Ipv4Addr,
    /// The test host's address: what EndpointSlices point at.
    pub addr: Ipv4Addr,
    created_netns: bool,
    created_veth: bool,
}

impl TestHost {
    /// Creates a namespace, a veth pair into it and the addresses, in a /30 chosen from this process's id.
    pub fn create() -> anyhow::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let slot = (std::process::id().wrapping_mul(16).wrapping_add(n)) % SLOTS + 1;
        let subnet = BASE + slot * 4;
        let mut host = TestHost {
            netns: format!("holdfast-e2e-{slot}"),
            host_veth: format!("hfe{slot}h"),
            peer_veth: format!("hfe{slot}p"),
            host_addr: Ipv4Addr::from(subnet + 1),
            addr: Ipv4Addr::from(subnet + 2),
            created_netns: false,
            created_veth: false,
        };
        // On an error, `host` drops here and removes whatever was already created.
        host.plumb().with_context(|| format!("cannot set up test host {}", host.netns))?;
        Ok(host)
    }

    fn plumb(&mut self) -> anyhow::Result<()> {
        let (ns, host_veth, peer) = (self.netns.clone(), self.host_veth.clone(), self.peer_veth.clone());
        ip(&["netns", "add", &ns])?;
        self.created_netns = true;
        ip(&["link", "add", &host_veth, "type", "veth", "peer", "name", &peer, "netns", &ns])?;
        self.created_veth = true;
        ip(&["addr", "add", &format!("{}/30", self.host_addr), "dev", &host_veth])?;
        ip(&["link", "set", &host_veth, "up"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/30", self.addr), "dev", &peer])?;
        ip(&["-n", &ns, "link", "set", &peer, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// A command that runs `program` inside the namespace. `ip netns exec` execs the program in place, so the
    /// child's pid is the program's own and killing it by pid stops the program.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns]).arg(program);
        command
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth end inside it, and with it the pair; the explicit delete covers
        // a namespace that is still held open by a process that outlived its handle.
        if self.created_netns {
            report(ip(&["netns", "del", &self.netns]));
        }
        if self.created_veth && link_exists(&self.host_veth) {
            report(ip(&["link", "del", &self.host_veth]));
        }
    }
}

fn report(result: anyhow::Result<()>) {
    if let Err(error) = result {
        eprintln!("cleanup: {error:#}");
    }
}

fn link_exists(name: &str) -> bool {
    Command::new("ip").args(["link", "show", name]).output().is_ok_and(|o| o.status.success())
}

/// Runs `ip ARGS`; fails with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("cannot run ip (iproute2)")?;
    anyhow::ensure!(
        output.status.success(),
        "ip {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
