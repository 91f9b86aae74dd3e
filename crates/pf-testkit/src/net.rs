//! Loopback ports for tests that start servers as separate processes.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback address whose port was free a moment ago (for a child process to listen on).
pub fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address")
}

/// Waits until something accepts connections on `addr`; panics, naming `what`, after `timeout`.
pub fn wait_listening(addr: SocketAddr, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_found_and_a_free_port_is_free() {
        let addr = free_loopback_addr();
        assert!(TcpStream::connect(addr).is_err(), "nothing listens yet");
        let listener = TcpListener::bind(addr).expect("the port is free to bind");
        wait_listening(addr, "the test listener", Duration::from_secs(5));
        drop(listener);
        let waited =
            std::panic::catch_unwind(|| wait_listening(addr, "nobody", Duration::from_millis(100)));
        let message = waited.expect_err("panics after the timeout");
        let text = message
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        assert!(text.contains("nobody never listened on"), "{text}");
    }
}
