//! Index tables shared by the readers: export index -> interned id.

use rustc_hash::FxHashMap;

use crate::error::ParseError;
use crate::store::{ExprId, LevelId, NameId, Store};

/// Maps from the export file's indices to interned ids (sparse, order-independent).
pub struct Tables {
    names: FxHashMap<u64, NameId>,
    levels: FxHashMap<u64, LevelId>,
    exprs: FxHashMap<u64, ExprId>,
}

impl Tables {
    /// Tables with the predefined entries: name 0 = anonymous, level 0 = zero.
    pub fn new(store: &Store) -> Self {
        let mut names = FxHashMap::default();
        names.insert(0, store.anon());
        let mut levels = FxHashMap::default();
        levels.insert(0, store.zero());
        Tables {
            names,
            levels,
            exprs: FxHashMap::default(),
        }
    }

    /// Resolves a name index.
    pub fn name(&self, line: usize, i: u64) -> Result<NameId, ParseError> {
        self.names.get(&i).copied().ok_or_else(|| {
            ParseError::new(
                line,
                format!("name index {i} is not defined before this line"),
            )
        })
    }

    /// Resolves a level index.
    pub fn level(&self, line: usize, i: u64) -> Result<LevelId, ParseError> {
        self.levels.get(&i).copied().ok_or_else(|| {
            ParseError::new(
                line,
                format!("level index {i} is not defined before this line"),
            )
        })
    }

    /// Resolves an expression index.
    pub fn expr(&self, line: usize, i: u64) -> Result<ExprId, ParseError> {
        self.exprs.get(&i).copied().ok_or_else(|| {
            ParseError::new(
                line,
                format!("expression index {i} is not defined before this line"),
            )
        })
    }

    /// Defines a name index (index 0 is reserved for the anonymous name).
    pub fn def_name(&mut self, line: usize, i: u64, v: NameId) -> Result<(), ParseError> {
        define(&mut self.names, line, "name", i, v)
    }

    /// Defines a level index (index 0 is reserved for level zero).
    pub fn def_level(&mut self, line: usize, i: u64, v: LevelId) -> Result<(), ParseError> {
        define(&mut self.levels, line, "level", i, v)
    }

    /// Defines an expression index.
    pub fn def_expr(&mut self, line: usize, i: u64, v: ExprId) -> Result<(), ParseError> {
        define(&mut self.exprs, line, "expression", i, v)
    }
}

fn define<T: Copy + PartialEq>(
    map: &mut FxHashMap<u64, T>,
    line: usize,
    what: &str,
    i: u64,
    v: T,
) -> Result<(), ParseError> {
    match map.get(&i) {
        Some(old) if *old == v => Ok(()),
        Some(_) => Err(ParseError::new(
            line,
            format!("{what} index {i} redefined with a different value"),
        )),
        None => {
            map.insert(i, v);
            Ok(())
        }
    }
}
