//! Secondary index for `find`: record keys (`agent:`, `bundle:`, `commitment:`) to leaf
//! indices. Derived data kept in an append-only text file with size watermarks; on open it is
//! trimmed to the checkpoint and caught up from the (verified) entries.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// In-memory map of index keys to leaf indices, mirrored to a file.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    map: HashMap<String, Vec<u64>>,
    watermark: u64,
    out: BufWriter<File>,
}

impl Index {
    /// Loads the index file, keeping only entries below `size`. Returns the index and the size
    /// up to which it is complete (entries from there on must be re-indexed by the caller).
    pub fn load(path: &Path, size: u64) -> std::io::Result<Index> {
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut text = String::new();
        f.read_to_string(&mut text)?;
        // A torn final line (crash while appending) is cut off.
        let keep = text.rfind('\n').map_or(0, |i| i + 1);
        if keep != text.len() {
            f.set_len(keep as u64)?;
            f.seek(SeekFrom::End(0))?;
        }
        let mut map: HashMap<String, Vec<u64>> = HashMap::new();
        let mut watermark = 0;
        for line in text[..keep].lines() {
            let Some((key, idx)) = line.rsplit_once('\t') else {
                continue;
            };
            let Ok(idx) = idx.parse::<u64>() else {
                continue;
            };
            if key == "@" {
                if idx <= size {
                    watermark = watermark.max(idx);
                }
            } else if idx < size {
                let v = map.entry(key.to_string()).or_default();
                if v.last().is_none_or(|l| *l < idx) {
                    v.push(idx);
                }
            }
        }
        Ok(Index {
            path: path.to_path_buf(),
            map,
            watermark,
            out: BufWriter::new(f),
        })
    }

    /// Size up to which every entry is indexed.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Records the keys of the entry at `index`.
    pub fn add(&mut self, index: u64, keys: &[String]) -> std::io::Result<()> {
        for k in keys {
            // Keys are built from record fields; tabs and newlines would break the line format.
            let k: String = k
                .chars()
                .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
                .collect();
            writeln!(self.out, "{k}\t{index}")?;
            let v = self.map.entry(k).or_default();
            if v.last().is_none_or(|l| *l < index) {
                v.push(index);
            }
        }
        Ok(())
    }

    /// Marks every entry below `size` as indexed and flushes.
    pub fn mark(&mut self, size: u64) -> std::io::Result<()> {
        writeln!(self.out, "@\t{size}")?;
        self.out.flush()?;
        self.watermark = size;
        Ok(())
    }

    /// Leaf indices recorded under `key`, ascending.
    pub fn find(&self, key: &str) -> &[u64] {
        self.map.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Path of the index file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_trims_to_size_and_torn_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("index");
        let mut i = Index::load(&p, 0).expect("load");
        i.add(0, &["agent:a".into()]).expect("add");
        i.add(1, &["agent:a".into(), "bundle:b".into()])
            .expect("add");
        i.mark(2).expect("mark");
        i.add(2, &["agent:a".into()]).expect("add");
        i.mark(3).expect("mark");
        drop(i);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| f.write_all(b"agent:a\t9"))
            .expect("torn");
        let i = Index::load(&p, 2).expect("reload");
        assert_eq!(i.find("agent:a"), &[0, 1]);
        assert_eq!(i.watermark(), 2);
    }
}
