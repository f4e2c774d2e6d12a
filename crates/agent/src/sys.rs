//! The few operating-system calls the agent makes directly: signalling a
//! process group and reading a process's identity from `/proc`.
//!
//! A pid alone does not name a process for long: once a process exits the
//! kernel may hand its pid to a new one. The agent therefore remembers a
//! process by pid *and* start time (field 22 of `/proc/<pid>/stat`, in clock
//! ticks since boot), and only treats a pid as "its" process when both still
//! match. This is what makes adoption after an agent restart safe.
//!
//! The shim (see `shim`) also needs two calls of its own: `setsid`, to
//! leave the agent's session, and a wait that does not reap; and a pod's
//! commands join its network namespace (`setns`).

use std::io;

/// What the agent reads from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The one-letter process state: `R`, `S`, `D`, `Z` (zombie), ...
    pub state: char,
    /// Start time in clock ticks after boot; with the pid, a process's identity.
    pub start_time: u64,
}

impl ProcStat {
    /// A zombie has exited and waits to be reaped: for us it is gone.
    pub fn is_alive(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Parses the text of `/proc/<pid>/stat`. The second field, the command name,
/// is in parentheses and may itself contain spaces and parentheses, so the
/// fields are counted from the *last* `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let close = text.rfind(')')?;
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // `rest[0]` is field 3 (state), so field 22 (starttime) is `rest[19]`.
    let state = rest.first()?.chars().next()?;
    let start_time = rest.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Reads `/proc/<pid>/stat`; `None` when no such process exists.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_stat)
}

/// Whether `pid` is still the living process that started at `start_time`.
pub fn is_same_process(pid: u32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.is_alive() && s.start_time == start_time)
}

/// Sends `signal` to every process in the process group `pgid`. The
/// container's main process leads its own group (it was started with
/// `process_group(0)`), so this reaches whatever it forked too, as stopping
/// a real container reaches every process in its cgroup. A group that no
/// longer exists is not an error: it is the outcome the caller wants.
#[allow(unsafe_code)]
pub fn kill_process_group(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // kill(-1) would signal every process we may signal, and kill(0) our own
    // group: never what a container stop means.
    if pgid <= 1 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill(2) takes two integers and reads or writes none of our
    // memory; a negative pid addresses the process group `pgid`.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Starts a new session with the caller as its leader, so that signals for
/// the agent's terminal or process group (Ctrl-C, a hang-up) never reach
/// it. Fails when the caller already leads a process group.
#[allow(unsafe_code)]
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid(2) takes no arguments and touches none of our memory.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks until the child `pid` has exited, *without* reaping it: its pid,
/// and so its process group id, stay reserved (a zombie) until the caller
/// waits for it. That makes it safe to signal the group after the leader
/// has exited, with no chance of hitting a recycled id.
#[allow(unsafe_code)]
pub fn wait_exited_no_reap(pid: u32) -> io::Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the
        // call; waitid(2) writes only into it.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Makes `cmd` join the network namespace `netns` (a file such as
/// `/run/netns/tk-...` or `/proc/<pid>/ns/net`) in the child, between fork
/// and exec: the command then sees the pod's interfaces, as `nsenter
/// --net=<netns> <command>` would run it. The namespace file is opened
/// here, before the fork, so the child only makes the one system call.
#[allow(unsafe_code)]
pub fn join_netns_on_exec(cmd: &mut std::process::Command, netns: &std::path::Path) -> io::Result<()> {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let fd: OwnedFd = std::fs::File::open(netns)?.into();
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setns(2), which is async-signal-safe, on a descriptor the
    // closure owns (it moves `fd` in, so it stays open until then).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// The network namespace process `pid` is in, when it is not ours: what an
/// exec into that process's container must join.
pub fn other_netns(pid: u32) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let (a, b) = (std::fs::metadata(&theirs).ok()?, std::fs::metadata("/proc/self/ns/net").ok()?);
    ((a.dev(), a.ino()) != (b.dev(), b.ino())).then_some(theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_the_last_parenthesis() {
        let fields_after_comm = "S 1 100 100 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        for comm in ["(sleep)", "(a b) c)", "((x))"] {
            let line = format!("4242 {comm} {fields_after_comm}");
            assert_eq!(parse_stat(&line), Some(ProcStat { state: 'S', start_time: 987_654 }), "{comm}");
        }
        assert_eq!(parse_stat("4242 (short) S 1"), None);
    }

    #[test]
    fn our_own_process_is_alive_with_a_stable_start_time() {
        let me = std::process::id();
        let stat = proc_stat(me).expect("/proc/self is readable");
        assert!(stat.is_alive());
        assert!(is_same_process(me, stat.start_time));
        assert!(!is_same_process(me, stat.start_time + 1));
    }

    #[test]
    fn refuses_to_signal_everyone() {
        assert!(kill_process_group(1, libc::SIGTERM).is_err());
        assert!(kill_process_group(0, libc::SIGTERM).is_err());
    }
}
