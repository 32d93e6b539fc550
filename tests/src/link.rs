//! A TCP link the test can cut: a proxy on loopback in front of one server (a node's etcd, say),
//! so one node loses that link while every other path stays up.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Forwards every connection to `target` until [`Link::cut`]; then closes them all and drops
/// new ones until [`Link::restore`].
pub struct Link {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Link {
    pub fn start(target: SocketAddr) -> io::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (open2, conns2, stop2) = (open.clone(), conns.clone(), stop.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let inbound = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                if !open2.load(Ordering::Relaxed) {
                    continue; // dropped: the link is down
                }
                let _ = inbound.set_nonblocking(false);
                let Ok(outbound) = TcpStream::connect(target) else { continue };
                let pairs = [(&inbound, &outbound), (&outbound, &inbound)];
                let mut copies = Vec::new();
                for (from, to) in pairs {
                    if let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) {
                        copies.push((from, to));
                    }
                }
                {
                    let mut held = crate::lock(&conns2);
                    held.extend(inbound.try_clone());
                    held.extend(outbound.try_clone());
                }
                for (mut from, mut to) in copies {
                    thread::spawn(move || {
                        let _ = io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Ok(Link { addr, open, conns, stop })
    }

    /// Close every connection through the link and refuse new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::Relaxed);
        for s in crate::lock(&self.conns).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}
