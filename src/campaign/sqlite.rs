//! `index.sqlite`: the campaign index as an SQLite database beside
//! `index.json`, for queries (docs/campaign-record.md has the schema).
//!
//! `index.json` stays the authority: each finished measurement is written
//! there first (atomically), then into SQLite in one transaction
//! (measurement row, its servers from `analysis.json`, its failure). Opening
//! a campaign (`--resume`) re-synchronises the whole database from
//! `index.json` in one transaction, so a crash between the two writes, or a
//! deleted database, heals; after the campaign-wide analysis every
//! measurement's servers are refreshed.

use super::CampaignError;
use super::record::{Index, IndexEntry, Status};
use crate::analysis::correlate::CorrelatedServer;
use rusqlite::{Connection, Transaction, params};
use std::path::{Path, PathBuf};

/// File name inside the campaign folder.
pub const SQLITE_FILE: &str = "index.sqlite";
/// Value of `meta.schema`. Version 2 added `measurements.pair`; a version 1
/// database (an older campaign being resumed) gets the column when opened.
pub const SQLITE_SCHEMA: &str = "matador/index-sqlite/2";

const DDL: &str = "
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  app TEXT NOT NULL,
  sender TEXT NOT NULL,
  receiver TEXT NOT NULL,
  sender_country TEXT NOT NULL,
  receiver_country TEXT NOT NULL,
  sender_node TEXT NOT NULL,
  receiver_node TEXT NOT NULL,
  repetition INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  started TEXT NOT NULL,
  ended TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  files TEXT NOT NULL,
  pair INTEGER
);
CREATE TABLE IF NOT EXISTS servers (
  measurement TEXT NOT NULL REFERENCES measurements(id) ON DELETE CASCADE,
  app TEXT NOT NULL,
  ip TEXT NOT NULL,
  port INTEGER NOT NULL,
  proto TEXT NOT NULL,
  role TEXT NOT NULL,
  score REAL NOT NULL,
  hits INTEGER NOT NULL,
  events INTEGER NOT NULL,
  baseline_hits INTEGER NOT NULL,
  baseline_windows INTEGER NOT NULL,
  names TEXT NOT NULL,
  evidence TEXT NOT NULL,
  PRIMARY KEY (measurement, app, ip, port, proto)
);
CREATE TABLE IF NOT EXISTS failures (
  measurement TEXT PRIMARY KEY REFERENCES measurements(id) ON DELETE CASCADE,
  status TEXT NOT NULL,
  step TEXT,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS servers_by_ip ON servers(ip);
CREATE INDEX IF NOT EXISTS measurements_by_app ON measurements(app, sender_country, receiver_country);
";

/// The open database.
#[derive(Debug)]
pub struct SqliteIndex {
    path: PathBuf,
    conn: Connection,
}

fn err(file: &Path) -> impl Fn(rusqlite::Error) -> CampaignError + '_ {
    move |e| CampaignError::Record {
        file: file.to_path_buf(),
        message: format!("sqlite: {e}"),
    }
}

impl SqliteIndex {
    /// Opens (creating when absent) `<dir>/index.sqlite` with its tables.
    pub fn open(dir: &Path, campaign: &str) -> Result<SqliteIndex, CampaignError> {
        let path = dir.join(SQLITE_FILE);
        let e = err(&path);
        let conn = Connection::open(&path).map_err(&e)?;
        // Rollback journal (no -wal files left beside it), fsync on commit.
        conn.execute_batch(
            "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )
        .map_err(&e)?;
        conn.execute_batch(DDL).map_err(&e)?;
        add_pair_column(&conn).map_err(&e)?;
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?1), ('campaign', ?2)",
            params![SQLITE_SCHEMA, campaign],
        )
        .map_err(&e)?;
        drop(e);
        Ok(SqliteIndex { path, conn })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records (or replaces) one finished measurement, in one transaction.
    pub fn upsert(&mut self, dir: &Path, entry: &IndexEntry) -> Result<(), CampaignError> {
        let path = self.path.clone();
        let e = err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        put(&tx, dir, entry).map_err(&e)?;
        tx.commit().map_err(&e)
    }

    /// Makes the database hold exactly `index` (and the servers of the
    /// measurements' current `analysis.json`), in one transaction.
    pub fn sync(&mut self, dir: &Path, index: &Index) -> Result<(), CampaignError> {
        let path = self.path.clone();
        let e = err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        tx.execute("DELETE FROM measurements", []).map_err(&e)?;
        for entry in &index.measurements {
            put(&tx, dir, entry).map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }
}

/// A database written before the `pair` column (an older campaign being
/// resumed) gets it; `sync` then fills it from `index.json`.
fn add_pair_column(conn: &Connection) -> rusqlite::Result<()> {
    let has = conn
        .prepare("SELECT 1 FROM pragma_table_info('measurements') WHERE name = 'pair'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE measurements ADD COLUMN pair INTEGER")?;
    }
    Ok(())
}

/// The servers of `measurements/<id>/analysis.json` (none when absent).
fn servers_of(dir: &Path, id: &str) -> Vec<CorrelatedServer> {
    let p = dir.join("measurements").join(id).join("analysis.json");
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value(v.get("servers")?.clone()).ok())
        .unwrap_or_default()
}

fn put(tx: &Transaction<'_>, dir: &Path, m: &IndexEntry) -> rusqlite::Result<()> {
    // Cascades remove the old servers and failure.
    tx.execute("DELETE FROM measurements WHERE id = ?1", params![m.id])?;
    let status = match m.status {
        Status::Complete => "complete",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    };
    tx.execute(
        "INSERT INTO measurements (id, kind, app, sender, receiver, sender_country,
           receiver_country, sender_node, receiver_node, repetition, messages, status,
           error, started, ended, attempts, files, pair)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
           ?18)",
        params![
            m.id,
            m.kind.as_str(),
            m.app,
            m.sender,
            m.receiver,
            m.sender_country,
            m.receiver_country,
            m.sender_node,
            m.receiver_node,
            m.repetition,
            m.messages,
            status,
            m.error,
            m.started.to_string(),
            m.ended.to_string(),
            m.attempts,
            serde_json::to_string(&m.files).unwrap_or_else(|_| "[]".into()),
            m.pair,
        ],
    )?;
    for s in servers_of(dir, &m.id) {
        tx.execute(
            "INSERT OR REPLACE INTO servers (measurement, app, ip, port, proto, role, score,
               hits, events, baseline_hits, baseline_windows, names, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                m.id,
                s.app,
                s.ip.to_string(),
                s.port,
                s.proto,
                s.role.as_str(),
                s.score,
                s.hits,
                s.events,
                s.baseline_hits,
                s.baseline_windows,
                serde_json::to_string(&s.names).unwrap_or_else(|_| "[]".into()),
                serde_json::to_string(&s.evidence).unwrap_or_else(|_| "[]".into()),
            ],
        )?;
    }
    if m.status != Status::Complete {
        let reason = m.error.clone().unwrap_or_default();
        // Failures read "<step>: <reason>"; skips have no step.
        let step = (m.status == Status::Failed)
            .then(|| reason.split_once(": ").map(|(s, _)| s.to_string()))
            .flatten();
        tx.execute(
            "INSERT INTO failures (measurement, status, step, reason, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![m.id, status, step, reason, m.attempts],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, pair: Option<u32>) -> IndexEntry {
        IndexEntry {
            id: id.into(),
            pair,
            ..IndexEntry::default()
        }
    }

    fn pairs(dir: &Path) -> Vec<(String, Option<u32>)> {
        let db = Connection::open(dir.join(SQLITE_FILE)).unwrap();
        let mut q = db
            .prepare("SELECT id, pair FROM measurements ORDER BY id")
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The pair that carried a measurement, NULL with one pair.
    #[test]
    fn the_pair_column_holds_the_index_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let mut db = SqliteIndex::open(tmp.path(), "c").unwrap();
        db.upsert(tmp.path(), &entry("m0001", Some(3))).unwrap();
        db.upsert(tmp.path(), &entry("m0002", None)).unwrap();
        assert_eq!(
            pairs(tmp.path()),
            [("m0001".into(), Some(3)), ("m0002".into(), None)]
        );
    }

    /// A database of an older campaign (no `pair` column) gets the column
    /// when opened, and a sync fills it.
    #[test]
    fn an_older_database_gets_the_pair_column() {
        let tmp = tempfile::tempdir().unwrap();
        let old = DDL.replace(",\n  pair INTEGER\n);", "\n);");
        assert_ne!(old, DDL);
        let c = Connection::open(tmp.path().join(SQLITE_FILE)).unwrap();
        c.execute_batch(&old).unwrap();
        drop(c);
        let mut db = SqliteIndex::open(tmp.path(), "c").unwrap();
        let index = Index {
            schema: String::new(),
            campaign: "c".into(),
            measurements: vec![entry("m0001", Some(2)), entry("m0002", None)],
        };
        db.sync(tmp.path(), &index).unwrap();
        assert_eq!(
            pairs(tmp.path()),
            [("m0001".into(), Some(2)), ("m0002".into(), None)]
        );
        // Opening again leaves the column as it is.
        drop(db);
        SqliteIndex::open(tmp.path(), "c").unwrap();
        assert_eq!(pairs(tmp.path()).len(), 2);
        let c = Connection::open(tmp.path().join(SQLITE_FILE)).unwrap();
        let schema: String = c
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(schema, SQLITE_SCHEMA);
    }
}
