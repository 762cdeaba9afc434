//! The README's backend-swap example: one policy call picks the loop.
//!
//! ```text
//! cargo run -p evloop --example swap_backend -- polling
//! ```
use evloop::{set_event_loop_policy, FactoryPolicy};
use std::sync::Arc;

fn main() -> evloop::Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "mio".to_owned());
    let backend: &'static str = Box::leak(name.into_boxed_str());
    // Like asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()):
    set_event_loop_policy(Some(Arc::new(FactoryPolicy::new(backend, move || {
        evloop::new_event_loop_for(backend)
    }))));
    let out = evloop::run(async {
        evloop::sleep(std::time::Duration::from_millis(10)).await;
        evloop::get_running_loop().map(|lp| lp.backend_name())
    })??;
    println!("backend: {out}");
    Ok(())
}
