//! PostgreSQL storage: the database coordinates sequencing (one row per log holds the current
//! size and checkpoint; a commit is one transaction that checks the size it extends, so many
//! front ends can sequence into one log without forking it). Following Tessera's lesson,
//! readers are not served from the database: every commit is also published to a directory
//! in tiles layout ([`FileStorage`]) which static servers or `pf ledger serve` read.

use std::sync::Mutex;

use postgres::{Client, NoTls};

use super::file::FileStorage;
use super::{Storage, StorageError};
use crate::tiles::TileId;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pf_ledger_state (
    log text PRIMARY KEY,
    size bigint NOT NULL,
    checkpoint bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS pf_ledger_tiles (
    log text NOT NULL,
    path text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (log, path)
);";

/// A log stored in PostgreSQL, published to files for readers.
pub struct PgStorage {
    client: Mutex<Client>,
    log: String,
    publish: Option<FileStorage>,
}

fn db(e: postgres::Error) -> StorageError {
    StorageError::Database(e.to_string())
}

impl PgStorage {
    /// Connects, creates the tables if needed, and (with `publish`) brings the published
    /// directory up to the database's checkpoint if an earlier publication was cut short.
    pub fn connect(
        url: &str,
        log: &str,
        publish: Option<FileStorage>,
    ) -> Result<PgStorage, StorageError> {
        let mut client = Client::connect(url, NoTls).map_err(db)?;
        client.batch_execute(SCHEMA).map_err(db)?;
        let s = PgStorage {
            client: Mutex::new(client),
            log: log.to_string(),
            publish,
        };
        s.republish_if_behind()?;
        Ok(s)
    }

    fn client(&self) -> Result<std::sync::MutexGuard<'_, Client>, StorageError> {
        self.client
            .lock()
            .map_err(|_| StorageError::Database("connection mutex poisoned".into()))
    }

    fn republish_if_behind(&self) -> Result<(), StorageError> {
        let Some(files) = &self.publish else {
            return Ok(());
        };
        let Some(cp) = self.read_checkpoint()? else {
            return Ok(());
        };
        if files.read_checkpoint()?.as_deref() == Some(cp.as_slice()) {
            return Ok(());
        }
        // Rare (crash between the database commit and publication): copy every tile.
        let rows = self
            .client()?
            .query(
                "SELECT path, data FROM pf_ledger_tiles WHERE log = $1",
                &[&self.log],
            )
            .map_err(db)?;
        let mut tiles = Vec::with_capacity(rows.len());
        for r in rows {
            let path: String = r.get(0);
            let id = TileId::parse(&path)
                .map_err(|e| StorageError::Database(format!("stored tile path: {e}")))?;
            tiles.push((id, r.get::<_, Vec<u8>>(1)));
        }
        files.commit(0, &tiles, 0, &cp)
    }

    /// Drops this log's rows (tests).
    pub fn destroy(&self) -> Result<(), StorageError> {
        let mut c = self.client()?;
        c.execute("DELETE FROM pf_ledger_tiles WHERE log = $1", &[&self.log])
            .map_err(db)?;
        c.execute("DELETE FROM pf_ledger_state WHERE log = $1", &[&self.log])
            .map_err(db)?;
        Ok(())
    }
}

impl Storage for PgStorage {
    fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT checkpoint FROM pf_ledger_state WHERE log = $1",
                &[&self.log],
            )
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn read_tile(&self, tile: &TileId) -> Result<Option<Vec<u8>>, StorageError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT data FROM pf_ledger_tiles WHERE log = $1 AND path = $2",
                &[&self.log, &tile.path()],
            )
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn commit(
        &self,
        old_size: u64,
        tiles: &[(TileId, Vec<u8>)],
        new_size: u64,
        checkpoint: &[u8],
    ) -> Result<(), StorageError> {
        let too_big = |n: u64| StorageError::Database(format!("size {n} exceeds bigint"));
        let old = i64::try_from(old_size).map_err(|_| too_big(old_size))?;
        let new = i64::try_from(new_size).map_err(|_| too_big(new_size))?;
        {
            let mut c = self.client()?;
            let mut tx = c.transaction().map_err(db)?;
            // The row lock serialises sequencers; the size check stops a stale one forking the log.
            let cur = tx
                .query_opt(
                    "SELECT size FROM pf_ledger_state WHERE log = $1 FOR UPDATE",
                    &[&self.log],
                )
                .map_err(db)?;
            match cur.map(|r| r.get::<_, i64>(0)) {
                Some(found) if found != old => {
                    return Err(StorageError::Conflict {
                        expected: old_size,
                        found: found as u64,
                    });
                }
                None if old != 0 => {
                    return Err(StorageError::Conflict {
                        expected: old_size,
                        found: 0,
                    });
                }
                _ => {}
            }
            if !tiles.is_empty() {
                let paths: Vec<String> = tiles.iter().map(|(t, _)| t.path()).collect();
                let data: Vec<&[u8]> = tiles.iter().map(|(_, d)| d.as_slice()).collect();
                tx.execute(
                    "INSERT INTO pf_ledger_tiles (log, path, data) SELECT $1, p, d FROM unnest($2::text[], $3::bytea[]) AS t(p, d)
                     ON CONFLICT (log, path) DO UPDATE SET data = EXCLUDED.data",
                    &[&self.log, &paths, &data],
                )
                .map_err(db)?;
            }
            tx.execute(
                "INSERT INTO pf_ledger_state (log, size, checkpoint) VALUES ($1, $2, $3)
                 ON CONFLICT (log) DO UPDATE SET size = EXCLUDED.size, checkpoint = EXCLUDED.checkpoint",
                &[&self.log, &new, &checkpoint],
            )
            .map_err(db)?;
            tx.commit().map_err(db)?;
        }
        // Durable in the database; now publish for readers (checkpoint last, as always).
        if let Some(files) = &self.publish {
            files.commit(old_size, tiles, new_size, checkpoint)?;
        }
        Ok(())
    }

    fn discard(&self, tiles: &[TileId]) -> Result<(), StorageError> {
        let paths: Vec<String> = tiles
            .iter()
            .filter(|t| !t.is_full())
            .map(TileId::path)
            .collect();
        if !paths.is_empty() {
            self.client()?
                .execute(
                    "DELETE FROM pf_ledger_tiles WHERE log = $1 AND path = ANY($2)",
                    &[&self.log, &paths],
                )
                .map_err(db)?;
        }
        if let Some(files) = &self.publish {
            files.discard(tiles)?;
        }
        Ok(())
    }
}
