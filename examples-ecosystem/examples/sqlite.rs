//! SQLite the asyncio way, after the talk's `8-aiosqlite.py`: `rusqlite`
//! behind `run_in_executor` through the small aiosqlite-like wrapper in
//! `examples_ecosystem::sqlite`.
//!
//! Several tasks insert messages at once, two more go in inside one
//! transaction (the talk's `10-contexts.py`), and the rows are read back.
//! Meanwhile a ticker task keeps running: a slow query on the executor does
//! not freeze the loop.
//!
//! ```text
//! cargo run -p examples-ecosystem --example sqlite
//! EVLOOP_BACKEND=mio cargo run -p examples-ecosystem --example sqlite
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use examples_ecosystem::sqlite::{AsyncConnection, DbError};

/// `(sender, recipient, message)`, as typed at the talk's prompts.
const MESSAGES: &[(&str, &str, &str)] = &[
    ("Bob", "Alice", "I need your help."),
    ("Janet", "Nina", "What time is the developer sync?"),
    ("Nina", "Janet", "I think it's after the design review."),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    evloop::run(async {
        examples_ecosystem::print_backend();
        let lp = evloop::get_running_loop()?;
        let db = AsyncConnection::open_in_memory().await?;
        db.execute(
            "CREATE TABLE messages (
                 id INTEGER PRIMARY KEY,
                 sender TEXT NOT NULL,
                 recipient TEXT NOT NULL,
                 message TEXT NOT NULL)",
            (),
        )
        .await?;

        // One task per message, all inserting at once.
        let mut inserts = Vec::new();
        for &(sender, recipient, message) in MESSAGES {
            let db = db.clone();
            inserts.push(lp.create_task(async move {
                let id = db
                    .execute_insert(
                        "INSERT INTO messages (sender, recipient, message) VALUES (?1, ?2, ?3)",
                        (sender, recipient, message),
                    )
                    .await?;
                println!("inserted row id {id} ({sender} -> {recipient})");
                Ok::<_, DbError>(id)
            })?);
        }
        for result in evloop::gather(inserts).await {
            result??;
        }

        // Two rows in one transaction: both or neither.
        let ids = db
            .call(|conn| {
                let tx = conn.transaction()?;
                let mut ids = Vec::new();
                for (to, text) in [
                    ("Jill", "I'm out of water."),
                    ("Terry", "Do you know where my pail is?"),
                ] {
                    tx.execute(
                        "INSERT INTO messages (sender, recipient, message) VALUES ('Jack', ?1, ?2)",
                        (to, text),
                    )?;
                    ids.push(tx.last_insert_rowid());
                }
                tx.commit()?;
                Ok(ids)
            })
            .await?;
        println!("inserted rows {ids:?} in one transaction");

        // A failing statement is an error at the await, not a crash.
        match db.execute("INSERT INTO nowhere VALUES (1)", ()).await {
            Err(DbError::Sqlite(e)) => println!("bad statement refused: {e}"),
            other => println!("bad statement: unexpected {other:?}"),
        }

        // A slow query on the executor while a ticker runs on the loop.
        let ticks = Rc::new(Cell::new(0u32));
        let ticker = lp.create_task({
            let ticks = ticks.clone();
            async move {
                loop {
                    evloop::sleep(Duration::from_millis(2)).await;
                    ticks.set(ticks.get() + 1);
                }
            }
        })?;
        let counted = db
            .call(|conn| {
                conn.query_row(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
                     SELECT count(*) FROM n",
                    (),
                    |row| row.get::<_, i64>(0),
                )
            })
            .await?;
        ticker.cancel();
        println!(
            "slow query counted {counted} rows; the loop ticked {} times meanwhile",
            ticks.get()
        );

        let rows = db
            .execute_fetchall(
                "SELECT id, sender, recipient, message FROM messages ORDER BY id",
                (),
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                },
            )
            .await?;
        for (id, sender, recipient, message) in rows {
            println!("row #{id} from {sender} to {recipient}: {message}");
        }
        db.close().await?;
        Ok(())
    })?
}
