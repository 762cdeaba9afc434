//! SQLite the asyncio way: a small [aiosqlite]-like wrapper that runs
//! [`rusqlite`] behind [`EventLoop::run_in_executor`].
//!
//! SQLite's calls block (disk I/O, locks), so they must not run on the loop
//! thread. [`AsyncConnection`] keeps one `rusqlite::Connection` behind a
//! `std::sync::Mutex` and runs every call as a job on the loop's executor.
//! An `async_lock::Mutex` on the loop side lets one job per connection be
//! in flight at a time, in the order the calls were made: executor threads
//! never queue on the connection's lock, and other connections (or other
//! blocking work) keep the rest of the pool.
//!
//! ```
//! use examples_ecosystem::sqlite::AsyncConnection;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! evloop::run(async {
//!     let db = AsyncConnection::open_in_memory().await?;
//!     db.execute("CREATE TABLE t (x INTEGER)", ()).await?;
//!     let id = db.execute_insert("INSERT INTO t (x) VALUES (?1)", (42,)).await?;
//!     let xs = db
//!         .execute_fetchall("SELECT x FROM t", (), |row| row.get::<_, i64>(0))
//!         .await?;
//!     assert_eq!((id, xs), (1, vec![42]));
//!     db.close().await
//! })??;
//! # Ok(())
//! # }
//! ```
//!
//! [aiosqlite]: https://github.com/omnilib/aiosqlite

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use evloop::EventLoop;

/// What an [`AsyncConnection`] call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite refused the statement (or could not open the database).
    Sqlite(rusqlite::Error),
    /// The loop could not run the job (closed, executor shut down, the job
    /// panicked).
    Loop(evloop::Error),
    /// The connection was closed by [`AsyncConnection::close`].
    Closed,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite(e) => write!(f, "sqlite: {e}"),
            DbError::Loop(e) => write!(f, "event loop: {e}"),
            DbError::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Sqlite(e) => Some(e),
            DbError::Loop(e) => Some(e),
            DbError::Closed => None,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<evloop::Error> for DbError {
    fn from(e: evloop::Error) -> Self {
        DbError::Loop(e)
    }
}

/// An SQLite connection used from async code on an evloop loop: every call
/// runs on the loop's executor (see the [module docs](self)).
///
/// Cloning gives another handle to the same connection (calls from all
/// handles are serialised). Dropping the last handle closes the connection
/// on whichever thread drops it last; [`close`](Self::close) closes it on
/// the executor and reports errors.
#[derive(Clone)]
pub struct AsyncConnection {
    lp: EventLoop,
    /// `None` once closed.
    conn: Arc<Mutex<Option<rusqlite::Connection>>>,
    /// One job in flight at a time, first come first served.
    turn: Arc<async_lock::Mutex<()>>,
}

impl fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncConnection")
            .field("lp", &self.lp)
            .finish_non_exhaustive()
    }
}

impl AsyncConnection {
    /// Opens (creating it if needed) the database file at `path`, on the
    /// running loop's executor.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        let path = path.as_ref().to_owned();
        Self::open_with(move || rusqlite::Connection::open(path)).await
    }

    /// Opens a private in-memory database.
    pub async fn open_in_memory() -> Result<Self, DbError> {
        Self::open_with(rusqlite::Connection::open_in_memory).await
    }

    async fn open_with<F>(open: F) -> Result<Self, DbError>
    where
        F: FnOnce() -> rusqlite::Result<rusqlite::Connection> + Send + 'static,
    {
        let lp = evloop::get_running_loop()?;
        let conn = lp.run_in_executor(open).await??;
        Ok(AsyncConnection {
            lp,
            conn: Arc::new(Mutex::new(Some(conn))),
            turn: Arc::new(async_lock::Mutex::new(())),
        })
    }

    /// Runs `f` with the connection on the executor and returns its result:
    /// the general form every other method is built on (transactions,
    /// prepared statements, pragmas ...).
    ///
    /// Dropping the returned future before it completes abandons the call:
    /// if `f` already started, it runs to the end on its thread and its
    /// result is discarded.
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let _turn = self.turn.lock().await;
        let conn = self.conn.clone();
        self.lp
            .run_in_executor(move || {
                // A job that panicked poisons the lock but leaves SQLite consistent.
                let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
                match guard.as_mut() {
                    Some(conn) => f(conn).map_err(DbError::Sqlite),
                    None => Err(DbError::Closed),
                }
            })
            .await?
    }

    /// Executes one statement; returns the number of rows changed.
    pub async fn execute<P>(&self, sql: impl Into<String>, params: P) -> Result<usize, DbError>
    where
        P: rusqlite::Params + Send + 'static,
    {
        let sql = sql.into();
        self.call(move |conn| conn.execute(&sql, params)).await
    }

    /// Executes an `INSERT` and returns the new row's id (aiosqlite's
    /// `execute_insert`, Python's `cursor.lastrowid`).
    pub async fn execute_insert<P>(&self, sql: impl Into<String>, params: P) -> Result<i64, DbError>
    where
        P: rusqlite::Params + Send + 'static,
    {
        let sql = sql.into();
        self.call(move |conn| {
            conn.execute(&sql, params)?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    /// Runs a query and maps every row with `map` (aiosqlite's
    /// `execute_fetchall`).
    pub async fn execute_fetchall<T, P, M>(
        &self,
        sql: impl Into<String>,
        params: P,
        map: M,
    ) -> Result<Vec<T>, DbError>
    where
        T: Send + 'static,
        P: rusqlite::Params + Send + 'static,
        M: FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let sql = sql.into();
        self.call(move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params, map)?;
            rows.collect()
        })
        .await
    }

    /// Closes the connection on the executor, after the calls already
    /// queued. Later calls, from any handle, fail with [`DbError::Closed`].
    pub async fn close(self) -> Result<(), DbError> {
        let _turn = self.turn.lock().await;
        let conn = self.conn.clone();
        self.lp
            .run_in_executor(move || {
                let taken = conn.lock().unwrap_or_else(|e| e.into_inner()).take();
                match taken {
                    Some(conn) => conn.close().map_err(|(_, e)| DbError::Sqlite(e)),
                    None => Ok(()),
                }
            })
            .await?
    }
}
