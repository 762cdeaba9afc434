//! Name resolution off the loop thread and happy eyeballs (DNS-*):
//! `getaddrinfo`, the injectable resolver, `create_connection_with`.
//!
//! Each test installs its resolver on its own loop, so none is exclusive.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use loop_api::net::{ConnectError, ConnectOptions, ResolveError, TcpListener, TcpStream};

use crate::net_support::run_net;
use crate::Factory;

#[doc(hidden)]
#[macro_export]
macro_rules! __dns_tests {
    ($f:expr) => {
        $crate::__section!($f, dns: [
            literal_addresses_skip_the_resolver,
            localhost_resolves_and_connects,
            unknown_host_is_a_typed_error_naming_it,
            sync_constructors_refuse_names_but_take_localhost,
            blocking_resolver_does_not_stall_the_loop,
            connect_falls_through_a_refused_address,
            all_failed_error_names_host_and_addresses,
            happy_eyeballs_does_not_wait_for_a_hanging_address,
        ]);
    };
}

/// A port on 127.0.0.1 that refuses connections (bound, then closed).
fn refused_addr() -> SocketAddr {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A resolver answering `addrs` for every name, counting its calls.
fn fixed_resolver(addrs: Vec<SocketAddr>) -> (Arc<dyn loop_api::net::Resolver>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let resolver = move |_host: &str, _port: u16| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(addrs.clone())
    };
    (Arc::new(resolver), calls)
}

/// DNS-1: literal addresses (IPv4, IPv6, bracketed IPv6) are parsed on the
/// spot: the resolver is never called, also not by `connect`.
pub fn literal_addresses_skip_the_resolver(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (resolver, calls) = fixed_resolver(vec![]);
        lp.set_resolver(Some(resolver)).unwrap();
        let v4 = lp.getaddrinfo("127.0.0.1", 80).await.unwrap();
        assert_eq!(v4, ["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        let v6 = lp.getaddrinfo("::1", 443).await.unwrap();
        assert_eq!(v6, ["[::1]:443".parse::<SocketAddr>().unwrap()]);
        let bracketed = lp.getaddrinfo("[::1]", 8).await.unwrap();
        assert_eq!(bracketed, ["[::1]:8".parse::<SocketAddr>().unwrap()]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no resolver for literals");
    });
}

/// DNS-2: `localhost` resolves (system resolver) to loopback addresses with
/// the port; a connect by that name reaches a server bound by that name.
pub fn localhost_resolves_and_connects(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let addrs = lp.getaddrinfo("localhost", 8080).await.unwrap();
        assert!(!addrs.is_empty());
        for a in &addrs {
            assert!(a.ip().is_loopback() && a.port() == 8080, "{addrs:?}");
        }
        let server = lp.create_server(("localhost", 0), |_s| async {}).unwrap();
        let port = server.local_addr().unwrap().port();
        let stream = lp.create_connection(("localhost", port)).await.unwrap();
        assert!(stream.peer_addr().unwrap().ip().is_loopback());
        server.close();
    });
}

/// DNS-3: a name that does not resolve is a `ResolveError` naming it, from
/// `getaddrinfo` and (inside the `io::Error`) from `connect`.
pub fn unknown_host_is_a_typed_error_naming_it(factory: impl Factory) {
    const HOST: &str = "no-such-host.invalid";
    run_net(factory, |lp| async move {
        let err = lp.getaddrinfo(HOST, 80).await.unwrap_err();
        assert_eq!(err.host(), HOST);
        assert_eq!(err.port(), 80);
        assert!(err.to_string().contains(HOST), "{err}");
        let err = TcpStream::connect((HOST, 80)).await.unwrap_err();
        let inner = ResolveError::find(&err).expect("a ResolveError inside");
        assert_eq!(inner.host(), HOST);
        assert!(err.to_string().contains(HOST), "{err}");
    });
}

/// DNS-4: the synchronous constructors never block on a resolver: a host
/// name is an `InvalidInput` error naming it; `localhost` works.
pub fn sync_constructors_refuse_names_but_take_localhost(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (resolver, calls) = fixed_resolver(vec!["127.0.0.1:1".parse().unwrap()]);
        lp.set_resolver(Some(resolver)).unwrap();
        let err = TcpListener::bind("example.test:0").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(ResolveError::find(&err).unwrap().host(), "example.test");
        let err = lp
            .create_server(("example.test", 0), |_s| async {})
            .unwrap_err();
        assert_eq!(ResolveError::find(&err).unwrap().host(), "example.test");
        let err = loop_api::net::UdpSocket::bind(("example.test", 0)).unwrap_err();
        assert_eq!(ResolveError::find(&err).unwrap().host(), "example.test");
        let listener = TcpListener::bind("localhost:0").unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    });
}

/// DNS-5: a resolver that blocks for 300 ms runs on another thread, and a
/// ticker task on the loop keeps ticking meanwhile; the connect then
/// reaches the address it returned.
pub fn blocking_resolver_does_not_stall_the_loop(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let resolver_thread: Arc<Mutex<Option<ThreadId>>> = Arc::new(Mutex::new(None));
        let seen = resolver_thread.clone();
        lp.set_resolver(Some(Arc::new(move |_host: &str, port: u16| {
            *seen.lock().unwrap() = Some(std::thread::current().id());
            std::thread::sleep(Duration::from_millis(300));
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        })))
        .unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let l = lp.clone();
        let ticker = lp
            .create_task(async move {
                loop {
                    l.sleep(Duration::from_millis(5)).await;
                    t.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
        let stream = lp
            .create_connection(("slow.example.test", target.port()))
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), target);
        let during = ticks.load(Ordering::SeqCst);
        ticker.cancel();
        assert_ne!(
            *resolver_thread.lock().unwrap(),
            Some(std::thread::current().id()),
            "the resolver ran on the loop thread"
        );
        // 300 ms of 5 ms sleeps is some 60 ticks; a stalled loop gets at most one.
        assert!(during >= 5, "the loop stalled: {during} ticks");
    });
}

/// DNS-6: a name resolving to [refused, listening] connects to the second,
/// one after the other (default) and with happy eyeballs alike.
pub fn connect_falls_through_a_refused_address(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ok = listener.local_addr().unwrap();
        let (resolver, calls) = fixed_resolver(vec![refused_addr(), ok]);
        lp.set_resolver(Some(resolver)).unwrap();
        let stream = lp.create_connection(("twohomes.test", 1)).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), ok);
        let options = ConnectOptions {
            happy_eyeballs_delay: Some(Duration::from_millis(50)),
            interleave: 0,
        };
        let stream = lp
            .create_connection_with(("twohomes.test", 1), options)
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), ok);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
}

/// DNS-7: when every address fails, the error names the host and each
/// address tried, in order, and keeps their common kind.
pub fn all_failed_error_names_host_and_addresses(factory: impl Factory) {
    run_net(factory, |lp| async move {
        let (a, b) = (refused_addr(), refused_addr());
        let (resolver, _) = fixed_resolver(vec![a, b]);
        lp.set_resolver(Some(resolver)).unwrap();
        for delay in [None, Some(Duration::from_millis(20))] {
            let options = ConnectOptions {
                happy_eyeballs_delay: delay,
                interleave: 0,
            };
            let err = lp
                .create_connection_with(("nowhere.test", 9), options)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
            let text = err.to_string();
            assert!(text.contains("nowhere.test:9"), "{text}");
            assert!(
                text.contains(&a.to_string()) && text.contains(&b.to_string()),
                "{text}"
            );
            let inner = ConnectError::find(&err).expect("a ConnectError inside");
            let tried: Vec<SocketAddr> = inner.attempts().iter().map(|(addr, _)| *addr).collect();
            assert_eq!(tried, vec![a, b]);
        }
    });
}

/// DNS-8: with `happy_eyeballs_delay`, an address whose connect hangs (its
/// listener's accept queue is full, so its SYNs are dropped) does not hold
/// up the next one: that starts after the delay and wins. Without the
/// delay the same connect would wait for the first to time out.
pub fn happy_eyeballs_does_not_wait_for_a_hanging_address(factory: impl Factory) {
    let hanging = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    hanging
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    hanging.listen(0).unwrap();
    let hang_addr = hanging.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue until a connect no longer completes.
    let mut fillers = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&hang_addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    run_net(factory, move |lp| async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ok = listener.local_addr().unwrap();
        let (resolver, _) = fixed_resolver(vec![hang_addr, ok]);
        lp.set_resolver(Some(resolver)).unwrap();
        let options = ConnectOptions {
            happy_eyeballs_delay: Some(Duration::from_millis(100)),
            interleave: 0,
        };
        let stream = lp
            .create_connection_with(("hanging.test", 1), options)
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), ok);
    });
    drop((fillers, hanging));
}
