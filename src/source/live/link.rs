//! Whether a live capture's interface is still there: an error on the
//! capture socket, or the interface's flags.
use std::time::Duration;

/// Why a live capture's interface can no longer be read.
#[derive(Debug)]
pub enum LinkError {
    Down,
    Removed,
    /// Another error on the capture socket (`None`: it gave no reason).
    Socket(Option<std::io::Error>),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Down => f.write_str("the interface went down"),
            LinkError::Removed => f.write_str("the interface was removed"),
            LinkError::Socket(None) => f.write_str("the capture socket reported an error"),
            LinkError::Socket(Some(e)) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Waits until the capture has packets to read, or `timeout` passes. An error
/// on the socket (the interface went down or was removed) is returned.
pub fn wait_readable(
    cap: &pcap::Capture<pcap::Active>,
    timeout: Duration,
) -> Result<(), LinkError> {
    use std::os::fd::AsRawFd;
    let fd = cap.as_raw_fd();
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the descriptor is
    // the capture's own and stays open while `cap` is borrowed.
    let n = unsafe {
        libc::poll(
            &mut fds,
            1,
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
    };
    if n > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid for writes of the sizes given.
        unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            );
        }
        return Err(match err {
            libc::ENETDOWN => LinkError::Down,
            libc::ENODEV | libc::ENXIO => LinkError::Removed,
            0 => LinkError::Socket(None),
            e => LinkError::Socket(Some(std::io::Error::from_raw_os_error(e))),
        });
    }
    Ok(())
}

/// Whether interface `name` is up, from its flags (`SIOCGIFFLAGS`, in the
/// capture's own network namespace); `Err` with a message when it is down or
/// gone. libpcap may read and clear the socket error that reports an interface
/// going down (it treats ENETDOWN as "no packets"), so the capture loop also
/// asks the kernel now and then. `any` and names too long for the call count as up.
pub fn interface_state(name: &str) -> Result<(), LinkError> {
    if name == "any" || name.len() >= libc::IFNAMSIZ {
        return Ok(());
    }
    // SAFETY: a plain datagram socket, closed below; `req` is a zeroed ifreq
    // whose name holds at most IFNAMSIZ-1 bytes and a NUL (checked above).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Ok(());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return match err.raw_os_error() {
                Some(libc::ENODEV) | Some(libc::ENXIO) => Err(LinkError::Removed),
                _ => Ok(()),
            };
        }
        if req.ifr_ifru.ifru_flags as libc::c_int & libc::IFF_UP == 0 {
            return Err(LinkError::Down);
        }
    }
    Ok(())
}
