//! The SQLite wrapper's lifecycle on every backend.

mod common;
use common::*;

use examples_ecosystem::sqlite::{AsyncConnection, DbError};

#[test]
fn sqlite_calls_after_close_fail_cleanly() {
    on_every_loop(|_lp| async move {
        let db = AsyncConnection::open_in_memory().await.unwrap();
        let other = db.clone();
        db.execute("CREATE TABLE t (x)", ()).await.unwrap();
        db.close().await.unwrap();
        assert!(matches!(
            other.execute("INSERT INTO t VALUES (1)", ()).await,
            Err(DbError::Closed)
        ));
        assert!(matches!(
            other.execute("nonsense", ()).await,
            Err(DbError::Closed)
        ));
    });
}

#[test]
fn sqlite_errors_reach_the_awaiter() {
    on_every_loop(|_lp| async move {
        let db = AsyncConnection::open_in_memory().await.unwrap();
        let err = db.execute("SELEKT 1", ()).await.unwrap_err();
        assert!(matches!(err, DbError::Sqlite(_)), "{err}");
        // The connection is still usable afterwards.
        let one = db
            .call(|c| c.query_row("SELECT 1", (), |r| r.get::<_, i64>(0)))
            .await
            .unwrap();
        assert_eq!(one, 1);
    });
}
