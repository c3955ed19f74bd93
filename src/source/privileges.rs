//! Giving up privileges once a live capture is open.
//!
//! Opening a capture needs root or CAP_NET_RAW + CAP_NET_ADMIN; reading from
//! the open handle needs neither. portflow parses hostile bytes from the
//! network, so right after the handle is open (and before any output file is
//! created or any other thread exists) it becomes an ordinary user, as
//! `tcpdump -Z` does: as root it switches to `-Z USER` (default: the user who
//! ran sudo, else `nobody`), with that user's groups; run with file or ambient
//! capabilities, it clears them all. Either way `no_new_privs` is set, so no
//! set-user-ID program it could be tricked into running regains them.
//! docs/SECURITY.md has the threat model.
use std::ffi::{CStr, CString};
use std::io;

/// What the process runs as after [`drop_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The user now running (`root` when `-Z root` kept it).
    pub user: String,
    /// Whether anything was given up.
    pub changed: bool,
}

// Stable Linux ABI values (include/uapi/linux/prctl.h, capability.h).
const PR_SET_NO_NEW_PRIVS: libc::c_int = 38;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Why privileges could not be given up (the capture does not start).
#[derive(Debug)]
pub enum PrivilegeError {
    /// `-Z` names a user that does not exist (or not a valid name).
    NoSuchUser(String),
    /// `-Z` names another user, which only root may become.
    NeedsRoot { user: String, running_as: String },
    /// A system call failed: what it was for, and why.
    System { what: String, error: io::Error },
    /// The switch happened, but root could be taken back.
    RootRegained(String),
}

impl std::fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivilegeError::NoSuchUser(u) => write!(f, "no such user: {u}"),
            PrivilegeError::NeedsRoot { user, running_as } => {
                write!(f, "-Z {user} needs root (running as {running_as})")
            }
            PrivilegeError::System { what, error } => write!(f, "{what}: {error}"),
            PrivilegeError::RootRegained(u) => {
                write!(f, "switched to {u} but could become root again")
            }
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// The last system call's error, with what it was for.
fn os_err(what: impl Into<String>) -> PrivilegeError {
    PrivilegeError::System {
        what: what.into(),
        error: io::Error::last_os_error(),
    }
}

/// The user a root capture switches to when `-Z` is not given: the user who
/// ran `sudo` (so files written land in their hands), else `nobody`.
pub fn default_user() -> String {
    match std::env::var("SUDO_USER") {
        Ok(u) if !u.is_empty() && u != "root" && lookup(&u).is_ok() => u,
        _ => "nobody".to_string(),
    }
}

/// (uid, gid) of `user`, a name or a numeric uid.
fn lookup(user: &str) -> Result<(u32, u32, CString), PrivilegeError> {
    let name = CString::new(user).map_err(|_| PrivilegeError::NoSuchUser(format!("{user:?}")))?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of
    // the strings it holds (only pw_name is read, copied before `buf` goes).
    let rc = unsafe {
        match user.parse::<u32>() {
            Ok(uid) => libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out),
            Err(_) => libc::getpwnam_r(
                name.as_ptr(),
                &mut pw,
                buf.as_mut_ptr(),
                buf.len(),
                &mut out,
            ),
        }
    };
    if rc != 0 || out.is_null() {
        return Err(PrivilegeError::NoSuchUser(user.to_string()));
    }
    // SAFETY: getpw*_r succeeded, so pw_name points at a C string in `buf`.
    let real_name = unsafe { CStr::from_ptr(pw.pw_name) }.to_owned();
    Ok((pw.pw_uid, pw.pw_gid, real_name))
}

fn no_new_privs() -> Result<(), PrivilegeError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(os_err("cannot set no_new_privs"));
    }
    Ok(())
}

/// Clears every capability set (effective, permitted, inheritable, ambient).
fn clear_capabilities() -> Result<(), PrivilegeError> {
    // SAFETY: prctl with integer arguments; capset reads the two structs.
    unsafe {
        // Fails (EINVAL) only on kernels without ambient capabilities (< 4.3).
        let _ = libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        let mut hdr = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) != 0 {
            return Err(os_err("cannot clear capabilities"));
        }
    }
    Ok(())
}

fn current_user() -> (u32, String) {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let name = lookup(&uid.to_string())
        .map(|(_, _, n)| n.to_string_lossy().into_owned())
        .unwrap_or_else(|_| uid.to_string());
    (uid, name)
}

/// Who a capture will run as once it gives up what opening needed
/// ([`plan`]), before anything is given up.
#[derive(Debug, Clone)]
pub struct Target {
    /// Switch to this user (`None`: stay who we are and clear capabilities,
    /// or keep root when `-Z root`).
    switch: Option<(u32, u32, CString)>,
    /// The user named in messages.
    pub user: String,
}

impl Target {
    /// The uid and gid the process will switch to, when it switches.
    pub fn switches_to(&self) -> Option<(u32, u32)> {
        self.switch.as_ref().map(|(u, g, _)| (*u, *g))
    }
}

/// Who the process will run as after [`drop_to`]: as root, `user` (`-Z`;
/// default [`default_user`]; `root` keeps root); as anyone else, itself, and
/// `-Z` must name that same user.
pub fn plan(user: Option<&str>) -> Result<Target, PrivilegeError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        let (uid, name) = current_user();
        if let Some(u) = user {
            let (want, _, _) = lookup(u)?;
            if want != uid {
                return Err(PrivilegeError::NeedsRoot {
                    user: u.to_string(),
                    running_as: name,
                });
            }
        }
        return Ok(Target {
            switch: None,
            user: name,
        });
    }
    let user = user.map(str::to_string).unwrap_or_else(default_user);
    let (uid, gid, name) = lookup(&user)?;
    if uid == 0 {
        return Ok(Target {
            switch: None,
            user: "root".into(),
        });
    }
    Ok(Target {
        user: name.to_string_lossy().into_owned(),
        switch: Some((uid, gid, name)),
    })
}

/// Gives up what opening the capture needed, as planned: switches to the
/// target user with its groups (root's capabilities go with uid 0), or
/// clears the capability sets; either way sets `no_new_privs`. Call it before
/// any other thread starts: the kernel changes credentials per thread (glibc
/// broadcasts set*id calls, but capset is per thread).
pub fn drop_to(t: &Target) -> Result<Dropped, PrivilegeError> {
    let Some((uid, gid, name)) = &t.switch else {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            clear_capabilities()?;
            no_new_privs()?;
        }
        return Ok(Dropped {
            user: t.user.clone(),
            changed: false,
        });
    };
    let user = &t.user;
    // The same groups as [`target_can_write_beside`] asks with.
    let groups = groups_of(name, *gid);
    // SAFETY: plain system calls on integers and a list of `groups.len()` ids.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(os_err(format!("cannot take the groups of {user}")));
        }
        if libc::setresgid(*gid, *gid, *gid) != 0 {
            return Err(os_err(format!("cannot switch to the group of {user}")));
        }
        if libc::setresuid(*uid, *uid, *uid) != 0 {
            return Err(os_err(format!("cannot switch to user {user}")));
        }
        // Leaving uid 0 clears the capability sets; check that root is gone
        // for good before going on.
        if libc::setuid(0) == 0 || libc::geteuid() == 0 {
            return Err(PrivilegeError::RootRegained(user.clone()));
        }
    }
    clear_capabilities()?;
    no_new_privs()?;
    Ok(Dropped {
        user: user.clone(),
        changed: true,
    })
}

/// The folder a file at `path` is created in.
fn folder_of(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    }
}

/// The groups of user `name` whose login group is `gid`.
fn groups_of(name: &CString, gid: u32) -> Vec<libc::gid_t> {
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let want = n;
        // SAFETY: `groups` holds `n` entries; getgrouplist writes at most that
        // many and sets `n` to how many there are.
        let r = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(n as usize);
            return groups;
        }
        if n <= want {
            return vec![gid];
        }
    }
}

/// Whether the user `t` switches to could create files in the folder of
/// `path`, asked before switching: a child process takes that user's
/// credentials and asks the kernel (`access`), so permission bits, groups and
/// ACLs all count. Without a switch, whether this process can.
pub fn target_can_write_beside(path: &std::path::Path, t: &Target) -> bool {
    let Some((uid, gid, name)) = &t.switch else {
        return can_write_beside(path);
    };
    let Ok(dir) = CString::new(folder_of(path).as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let groups = groups_of(name, *gid);
    // SAFETY: the child makes system calls only (no allocation, no lock) on
    // values prepared before the fork, and leaves with _exit; the parent
    // waits for it.
    unsafe {
        match libc::fork() {
            0 => {
                let ok = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                    && libc::setresgid(*gid, *gid, *gid) == 0
                    && libc::setresuid(*uid, *uid, *uid) == 0
                    && libc::access(dir.as_ptr(), libc::W_OK | libc::X_OK) == 0;
                libc::_exit(if ok { 0 } else { 1 })
            }
            -1 => false,
            child => {
                let mut status = 0;
                libc::waitpid(child, &mut status, 0) == child
                    && libc::WIFEXITED(status)
                    && libc::WEXITSTATUS(status) == 0
            }
        }
    }
}

/// Whether the current user may create files in the folder of `path`.
pub fn can_write_beside(path: &std::path::Path) -> bool {
    let Ok(c) = CString::new(folder_of(path).as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: access reads a valid C string; it checks the real uid, which
    // after a switch is the new user.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_users_by_name_and_number() {
        let (uid, _, name) = lookup("root").unwrap();
        assert_eq!(uid, 0);
        assert_eq!(name.to_str().unwrap(), "root");
        let (_, _, name) = lookup("0").unwrap();
        assert_eq!(name.to_str().unwrap(), "root");
        assert!(lookup("no-such-user-portflow").is_err());
        assert!(lookup("bad\0name").is_err());
    }

    #[test]
    fn nobody_cannot_write_where_only_root_may_and_can_where_anyone_may() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // As the end-to-end tests do (tests/support, can_run): CI runs as root.
            assert!(
                std::env::var_os("CI").is_none(),
                "this test switches users and needs root, which CI has"
            );
            eprintln!(
                "skipped: this test switches users and needs root (make test as root runs it)"
            );
            return;
        }
        let nobody = plan(Some("nobody")).expect("nobody exists");
        assert!(nobody.switches_to().is_some());
        let dir = std::env::temp_dir().join(format!("portflow-priv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("mode");
        assert!(!target_can_write_beside(&dir.join("f"), &nobody));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("mode");
        assert!(target_can_write_beside(&dir.join("f"), &nobody));
        std::fs::remove_dir_all(&dir).expect("removed");
        assert!(plan(Some("root")).expect("root").switches_to().is_none());
    }

    #[test]
    fn default_user_is_never_root() {
        assert_ne!(default_user(), "root");
    }
}
