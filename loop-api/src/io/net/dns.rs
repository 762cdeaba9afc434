//! Name resolution off the loop thread ([`EventLoop::getaddrinfo`]), the
//! address argument of the networking calls ([`ToSocketAddrs`]), and
//! asyncio's happy eyeballs for [`EventLoop::create_connection_with`].
//!
//! # Rules
//! - A literal address (`"127.0.0.1"`, `"::1"`, `"[::1]"`) never reaches a
//!   resolver: it is parsed on the spot, with no executor hop (asyncio's
//!   `_ipaddr_info` fast path).
//! - Any other host name is resolved by the loop's [`Resolver`] (by default
//!   [`SystemResolver`]: the C library's `getaddrinfo`, through std) on the
//!   loop's executor, as asyncio does with `run_in_executor`: the loop keeps
//!   running while it blocks. [`EventLoop::set_resolver`] installs another.
//! - The calls that can wait (`TcpStream::connect`, `create_connection`,
//!   `getaddrinfo`) resolve that way. The synchronous constructors
//!   (`TcpListener::bind`, `UdpSocket::bind`, `UdpSocket::connect`,
//!   `create_server`) cannot wait without stalling the loop, so they take
//!   literal addresses and `localhost` (which they map to `127.0.0.1` and
//!   `::1`, in that order, as RFC 6761 has it) and refuse any other name
//!   with an `InvalidInput` error carrying a [`ResolveError`] that names
//!   it: resolve first with `lp.getaddrinfo(host, port).await?` and pass
//!   the addresses.
//! - A failed resolution is a [`ResolveError`] naming the host (wrapped in
//!   an `io::Error` of the same kind where the call returns `io::Result`;
//!   [`ResolveError::find`] gets it back); an empty answer is one too.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::io::net::{TcpSocket, TcpStream};
use crate::loop_core::extensions::Extension;
use crate::loop_core::EventLoop;

/// Blocking name resolution, run on the loop's executor (never on the loop
/// thread). Install one with [`EventLoop::set_resolver`]; any
/// `Fn(&str, u16) -> io::Result<Vec<SocketAddr>>` that is `Send + Sync`
/// is one.
///
/// ```no_run
/// # fn demo(lp: &evloop::EventLoop) -> evloop::Result<()> {
/// use std::net::SocketAddr;
/// use std::sync::Arc;
/// // A fixed table, e.g. for tests.
/// lp.set_resolver(Some(Arc::new(|host: &str, port: u16| match host {
///     "db.internal" => Ok(vec![SocketAddr::from(([10, 0, 0, 7], port))]),
///     _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host")),
/// })))?;
/// # Ok(()) }
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host` (never a literal address) with `port`.
    /// May block: it runs on an executor thread.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

impl<F> Resolver for F
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// The default [`Resolver`]: the C library's `getaddrinfo` (through std's
/// `ToSocketAddrs`), which reads `/etc/hosts` and asks DNS.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect)
    }
}

/// A host name that could not be resolved (asyncio's `socket.gaierror`):
/// the name, the port, and why.
///
/// Where a call returns `io::Result`, it comes wrapped in an `io::Error` of
/// the same [`kind`](Self::kind); [`ResolveError::find`] gets it back:
///
/// ```no_run
/// # async fn demo(lp: &evloop::EventLoop) {
/// use evloop::net::ResolveError;
/// let err = lp.create_connection(("no-such-host.invalid", 80)).await.unwrap_err();
/// assert_eq!(ResolveError::find(&err).unwrap().host(), "no-such-host.invalid");
/// # }
/// ```
#[derive(Debug)]
pub struct ResolveError {
    host: String,
    port: u16,
    source: io::Error,
}

impl ResolveError {
    pub(crate) fn new(host: &str, port: u16, source: io::Error) -> ResolveError {
        ResolveError {
            host: host.to_owned(),
            port,
            source,
        }
    }

    /// The host name that failed.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port it was to be resolved with.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The kind of the underlying error (that of the resolver's error).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The `ResolveError` inside `err` (an [`Error`](crate::Error), or an
    /// `io::Error` made from one), if it is one.
    pub fn find<'e>(err: &'e (dyn StdError + 'static)) -> Option<&'e ResolveError> {
        find_in(err)
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot resolve host {:?} (port {}): {}",
            self.host, self.port, self.source
        )
    }
}

impl StdError for ResolveError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

impl From<ResolveError> for io::Error {
    fn from(e: ResolveError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

impl From<ResolveError> for crate::Error {
    /// An [`Error::Io`](crate::Error::Io) of the resolver's kind; its
    /// message names the host (no further context).
    fn from(e: ResolveError) -> crate::Error {
        io::Error::from(e).into()
    }
}

/// `T` inside `err`: `err` itself, or inside the `io::Error` of an
/// `evloop::Error` or of an `io::Error` (at any depth).
fn find_in<'e, T: StdError + 'static>(mut err: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    loop {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        err = if let Some(e) = err.downcast_ref::<crate::Error>() {
            e.io_error()?
        } else if let Some(e) = err.downcast_ref::<io::Error>() {
            e.get_ref()?
        } else {
            return None;
        };
    }
}

/// Every attempt of a connect failed: the host as given and, in the order
/// tried, each address with its error (asyncio's "Multiple exceptions").
/// Comes wrapped in an `io::Error` whose kind is the attempts' common kind
/// (`ConnectionRefused` when every address refused), else `Other`;
/// [`ConnectError::find`] gets it back.
#[derive(Debug)]
pub struct ConnectError {
    host: String,
    attempts: Vec<(SocketAddr, io::Error)>,
}

impl ConnectError {
    /// The host as given (`"example.com:80"`, or the address list).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Each address tried, in order, with its error.
    pub fn attempts(&self) -> &[(SocketAddr, io::Error)] {
        &self.attempts
    }

    /// The `ConnectError` inside `err` (an [`Error`](crate::Error), or an
    /// `io::Error` made from one), if it is one.
    pub fn find<'e>(err: &'e (dyn StdError + 'static)) -> Option<&'e ConnectError> {
        find_in(err)
    }

    fn kind(&self) -> io::ErrorKind {
        let mut kinds = self.attempts.iter().map(|(_, e)| e.kind());
        match kinds.next() {
            Some(first) if kinds.all(|k| k == first) => first,
            _ => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to {}: ", self.host)?;
        for (i, (addr, e)) in self.attempts.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{addr}: {e}")?;
        }
        Ok(())
    }
}

impl StdError for ConnectError {}

impl From<ConnectError> for io::Error {
    fn from(e: ConnectError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// What an address argument stands for: addresses already known, or a
/// host name and port still to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Socket addresses, used as they are.
    Addrs(Vec<SocketAddr>),
    /// A host name (not a literal address) and a port.
    Host(String, u16),
}

/// The address argument of evloop's networking calls: what std's
/// `ToSocketAddrs` accepts (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`,
/// `("host", port)`, `&[SocketAddr]`, ...), but telling a host name apart
/// from an address *without* resolving it, so that the name can be
/// resolved off the loop thread (see the [module notes](self)).
pub trait ToSocketAddrs {
    /// The addresses, or the host name and port to resolve. A malformed
    /// `"host:port"` string is an `InvalidInput` error.
    fn to_target(&self) -> io::Result<Target>;
}

/// The address of a literal host (`"::1"` and `"[::1]"` alike), if it is one.
fn literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn host_port(host: &str, port: u16) -> Target {
    match literal(host) {
        Some(ip) => Target::Addrs(vec![SocketAddr::new(ip, port)]),
        None => Target::Host(host.to_owned(), port),
    }
}

impl ToSocketAddrs for SocketAddr {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(vec![*self]))
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(vec![SocketAddr::V4(*self)]))
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(vec![SocketAddr::V6(*self)]))
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(vec![SocketAddr::new(self.0, self.1)]))
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(vec![SocketAddr::from(*self)]))
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(vec![SocketAddr::from(*self)]))
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_target(&self) -> io::Result<Target> {
        Ok(host_port(self.0, self.1))
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_target(&self) -> io::Result<Target> {
        Ok(host_port(&self.0, self.1))
    }
}

impl ToSocketAddrs for str {
    fn to_target(&self) -> io::Result<Target> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Target::Addrs(vec![addr]));
        }
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| invalid("invalid socket address (expected host:port)"))?;
        let port: u16 = port.parse().map_err(|_| invalid("invalid port value"))?;
        Ok(host_port(host, port))
    }
}

impl ToSocketAddrs for String {
    fn to_target(&self) -> io::Result<Target> {
        self.as_str().to_target()
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.to_vec()))
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.to_vec()))
    }
}

impl ToSocketAddrs for Vec<SocketAddr> {
    fn to_target(&self) -> io::Result<Target> {
        Ok(Target::Addrs(self.clone()))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_target(&self) -> io::Result<Target> {
        (**self).to_target()
    }
}

/// Resolves `addr` without waiting (the synchronous constructors): literal
/// addresses and `localhost` only (see the module notes).
pub(crate) fn resolve_now<A: ToSocketAddrs + ?Sized>(addr: &A) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.to_target()? {
        Target::Addrs(addrs) => addrs,
        Target::Host(host, port) if host.eq_ignore_ascii_case("localhost") => vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ],
        Target::Host(host, port) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                ResolveError::new(
                    &host,
                    port,
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a synchronous call cannot wait for name resolution: \
                         resolve it first with EventLoop::getaddrinfo and pass the addresses",
                    ),
                ),
            ));
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// The loop's resolver, if one was installed.
#[derive(Default)]
pub(crate) struct DnsState {
    resolver: RefCell<Option<Arc<dyn Resolver>>>,
}

impl Extension for DnsState {
    fn on_close(&self, _lp: &EventLoop) {
        self.resolver.borrow_mut().take();
    }
}

/// Options for [`EventLoop::create_connection_with`] (asyncio's
/// `create_connection` keywords of the same names).
///
/// ```
/// use evloop::net::ConnectOptions;
/// use std::time::Duration;
/// // RFC 8305's recommended delay, as asyncio documents it.
/// let options = ConnectOptions {
///     happy_eyeballs_delay: Some(Duration::from_millis(250)),
///     ..Default::default()
/// };
/// assert_eq!(options.interleave, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `None` (the default): the addresses are tried one after the other,
    /// each after the previous failed. `Some(delay)`: happy eyeballs
    /// (RFC 8305): the next attempt starts when the previous one failed or
    /// `delay` after it started, whichever comes first; the first to
    /// connect wins and the others are cancelled (their sockets closed).
    pub happy_eyeballs_delay: Option<Duration>,
    /// Reorders the resolved addresses by family before trying them: the
    /// first `interleave` addresses of the first family, then one of each
    /// family in turn. `0` (the default) means asyncio's `None`: no
    /// reordering, unless `happy_eyeballs_delay` is set, which makes it 1.
    pub interleave: usize,
}

impl ConnectOptions {
    fn effective_interleave(&self) -> usize {
        match (self.interleave, self.happy_eyeballs_delay) {
            (0, Some(_)) => 1,
            (n, _) => n,
        }
    }
}

/// Reorders `addrs` by family (see [`ConnectOptions::interleave`]).
fn interleave(addrs: Vec<SocketAddr>, first_family_count: usize) -> Vec<SocketAddr> {
    if first_family_count == 0 {
        return addrs;
    }
    // Families in order of first appearance.
    let mut families: Vec<std::collections::VecDeque<SocketAddr>> = Vec::new();
    for addr in addrs {
        match families
            .iter_mut()
            .find(|f| f.front().is_some_and(|a| a.is_ipv4() == addr.is_ipv4()))
        {
            Some(family) => family.push_back(addr),
            None => families.push(std::collections::VecDeque::from([addr])),
        }
    }
    let mut out = Vec::new();
    if let Some(first) = families.first_mut() {
        let take = (first_family_count - 1).min(first.len());
        out.extend(first.drain(..take));
    }
    while families.iter().any(|f| !f.is_empty()) {
        for family in &mut families {
            if let Some(addr) = family.pop_front() {
                out.push(addr);
            }
        }
    }
    out
}

type Attempt<'a> = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + 'a>>;

async fn connect_one(lp: &EventLoop, addr: SocketAddr) -> io::Result<TcpStream> {
    TcpSocket::new_for(&addr)?.connect_on(lp, addr).await
}

/// Tries `addrs` (asyncio's `staggered_race` with `delay`, or one by one
/// without): the first stream connected, or every attempt's error in order.
async fn staggered_connect(
    lp: &EventLoop,
    addrs: &[SocketAddr],
    delay: Option<Duration>,
) -> Result<TcpStream, Vec<(SocketAddr, io::Error)>> {
    let Some(delay) = delay else {
        let mut errors = Vec::new();
        for &addr in addrs {
            match connect_one(lp, addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => errors.push((addr, e)),
            }
        }
        return Err(errors);
    };
    let mut running: Vec<(usize, Attempt<'_>)> = Vec::new();
    let mut errors: Vec<(usize, io::Error)> = Vec::new();
    let mut next = 0;
    let mut start_next = true;
    let mut timer: Option<Pin<Box<dyn Future<Output = ()> + '_>>> = None;
    let winner = std::future::poll_fn(|cx| loop {
        if start_next && next < addrs.len() {
            running.push((next, Box::pin(connect_one(lp, addrs[next]))));
            next += 1;
            start_next = false;
            timer = (next < addrs.len()).then(|| Box::pin(lp.sleep(delay)) as _);
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].1.as_mut().poll(cx) {
                Poll::Ready(Ok(stream)) => return Poll::Ready(Some(stream)),
                Poll::Ready(Err(e)) => {
                    let (index, _) = running.remove(i);
                    errors.push((index, e));
                    // The latest attempt failed: do not wait for the delay.
                    if index + 1 == next {
                        start_next = true;
                    }
                }
                Poll::Pending => i += 1,
            }
        }
        if start_next && next < addrs.len() {
            continue;
        }
        if let Some(t) = timer.as_mut() {
            if t.as_mut().poll(cx).is_ready() {
                timer = None;
                start_next = true;
                continue;
            }
        }
        if running.is_empty() && next >= addrs.len() {
            return Poll::Ready(None);
        }
        return Poll::Pending;
    })
    .await;
    // The losers (still connecting) are cancelled here: their sockets close.
    drop(running);
    match winner {
        Some(stream) => Ok(stream),
        None => {
            errors.sort_by_key(|(index, _)| *index);
            Err(errors
                .into_iter()
                .map(|(index, e)| (addrs[index], e))
                .collect())
        }
    }
}

/// `TcpStream::connect` and `create_connection[_with]`: resolve (off the
/// loop thread), reorder, try.
pub(crate) async fn connect_target(
    lp: &EventLoop,
    target: Target,
    options: ConnectOptions,
) -> crate::Result<TcpStream> {
    let (host, addrs, literal) = match target {
        Target::Addrs(addrs) => {
            let host = addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            (host, addrs, true)
        }
        Target::Host(host, port) => {
            let addrs = lp.getaddrinfo(&host, port).await?;
            (format!("{host}:{port}"), addrs, false)
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to").into());
    }
    let addrs = interleave(addrs, options.effective_interleave());
    match staggered_connect(lp, &addrs, options.happy_eyeballs_delay).await {
        Ok(stream) => Ok(stream),
        // One literal address: its own error, as the OS gave it.
        Err(mut attempts) if literal && attempts.len() == 1 => {
            let (addr, e) = attempts.remove(0);
            Err(crate::Error::io(format!("connect to {addr}"), e))
        }
        Err(attempts) => Err(io::Error::from(ConnectError { host, attempts }).into()),
    }
}

impl EventLoop {
    /// Resolves `host` with `port` into socket addresses (asyncio's
    /// `loop.getaddrinfo`), without blocking the loop: a literal address
    /// is parsed at once (no executor hop, no resolver); any other name
    /// goes to the loop's [`Resolver`] on its executor (see
    /// [`run_in_executor`](Self::run_in_executor)), so other tasks keep
    /// running while it blocks.
    ///
    /// Returns the addresses in the resolver's order, never an empty list.
    /// A name that does not resolve, an empty answer, or an executor that
    /// cannot run the job (loop closed, executor shut down) is a
    /// [`ResolveError`] naming the host. To keep one family, filter the
    /// result (`addrs.retain(SocketAddr::is_ipv4)`).
    ///
    /// ```no_run
    /// # async fn demo(lp: &evloop::EventLoop) -> Result<(), evloop::net::ResolveError> {
    /// let addrs = lp.getaddrinfo("localhost", 8080).await?;
    /// assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    /// let literal = lp.getaddrinfo("::1", 8080).await?; // no executor involved
    /// assert_eq!(literal, ["[::1]:8080".parse().unwrap()]);
    /// # Ok(()) }
    /// ```
    pub async fn getaddrinfo(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        if let Some(ip) = literal(host) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let resolver = self.resolver();
        let name = host.to_owned();
        let result = self
            .run_in_executor(move || resolver.resolve(&name, port))
            .await;
        match result {
            Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
            Ok(Ok(_)) => Err(ResolveError::new(
                host,
                port,
                io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address"),
            )),
            Ok(Err(e)) => Err(ResolveError::new(host, port, e)),
            Err(e) => Err(ResolveError::new(host, port, e.into())),
        }
    }

    /// Installs the [`Resolver`] that [`getaddrinfo`](Self::getaddrinfo)
    /// (and so every connect by host name) uses on this loop; `None` puts
    /// back the default, [`SystemResolver`]. [`Error::Closed`](crate::Error)
    /// on a closed loop.
    pub fn set_resolver(&self, resolver: Option<Arc<dyn Resolver>>) -> crate::Result<()> {
        self.check_open()?;
        let state = self.inner.extensions.get_or_insert_with(DnsState::default);
        *state.resolver.borrow_mut() = resolver;
        Ok(())
    }

    fn resolver(&self) -> Arc<dyn Resolver> {
        self.inner
            .extensions
            .get::<DnsState>()
            .and_then(|s| s.resolver.borrow().clone())
            .unwrap_or_else(|| Arc::new(SystemResolver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn targets_tell_names_from_addresses() {
        assert_eq!(
            "127.0.0.1:80".to_target().unwrap(),
            Target::Addrs(vec![a("127.0.0.1:80")])
        );
        assert_eq!(
            ("::1", 80).to_target().unwrap(),
            Target::Addrs(vec![a("[::1]:80")])
        );
        assert_eq!(
            "[::1]:80".to_target().unwrap(),
            Target::Addrs(vec![a("[::1]:80")])
        );
        assert_eq!(
            "example.com:443".to_target().unwrap(),
            Target::Host("example.com".into(), 443)
        );
        assert_eq!(
            (String::from("localhost"), 0).to_target().unwrap(),
            Target::Host("localhost".into(), 0)
        );
        for bad in ["example.com", "example.com:http", "host:99999"] {
            assert_eq!(
                bad.to_target().unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn resolve_now_maps_localhost_and_refuses_names() {
        assert_eq!(
            resolve_now(&("localhost", 7)).unwrap(),
            vec![a("127.0.0.1:7"), a("[::1]:7")]
        );
        let err = resolve_now("example.com:80").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(ResolveError::find(&err).unwrap().host(), "example.com");
        assert_eq!(
            resolve_now(&[] as &[SocketAddr]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn interleave_alternates_families() {
        let (v4a, v4b, v6a, v6b) = (a("1.1.1.1:1"), a("2.2.2.2:1"), a("[::1]:1"), a("[::2]:1"));
        let addrs = vec![v6a, v6b, v4a, v4b];
        assert_eq!(interleave(addrs.clone(), 0), addrs);
        assert_eq!(interleave(addrs.clone(), 1), vec![v6a, v4a, v6b, v4b]);
        assert_eq!(interleave(addrs.clone(), 2), vec![v6a, v6b, v4a, v4b]);
        assert_eq!(interleave(vec![v4a, v4b], 1), vec![v4a, v4b]);
    }
}
