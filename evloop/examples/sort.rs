//! Runs `sort` as a child process: one task feeds it lines through its
//! stdin pipe while the main task reads the sorted result from its stdout.
//!
//! ```text
//! cargo run -p evloop --example sort
//! EVLOOP_BACKEND=mio cargo run -p evloop --example sort
//! ```

use evloop::process::{Command, Stdio};

const LINES: &[&str] = &[
    "pear", "apple", "fig", "banana", "cherry", "kiwi", "date", "grape",
];

fn main() -> Result<(), evloop::Error> {
    let lp = evloop::new_event_loop()?;
    println!("backend: {}", lp.backend_name());
    let l = lp.clone();
    lp.run_until_complete(async move {
        let mut child = Command::new("sort")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn(&l)?;
        println!("started sort, pid {}", child.pid());

        let mut stdin = child.stdin.take().expect("piped");
        let feeder = l.create_task(async move {
            for line in LINES {
                println!("  fed: {line}");
                let (res, _) = stdin.write_all_owned(format!("{line}\n")).await;
                res?;
            }
            // Dropping stdin closes the pipe: sort sees end of input.
            drop(stdin);
            Ok::<_, std::io::Error>(())
        })?;

        let output = child
            .stdout
            .as_mut()
            .expect("piped")
            .read_to_end_owned()
            .await?;
        feeder.await??;
        let code = child.wait().await?;
        for line in String::from_utf8_lossy(&output).lines() {
            println!("sorted: {line}");
        }
        println!("sort exited with {code}");
        Ok::<_, evloop::Error>(())
    })??;
    lp.close()?;
    Ok(())
}
