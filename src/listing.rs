//! `-H`, `-L`, `-M`, `-S MY PEER`: database listings (cli.md §12.1–§12.3).
//! Each returns the number of lines printed (exit 2 when none).

use crate::Fatal;
use crate::config::Config;
use crate::db::Db;
use crate::json::Obj;
use crate::msg;
use std::io::Write;

fn emit(out: &mut impl Write, line: &[u8]) {
    let _ = out.write_all(line);
}

pub fn hints(db: &Db, json: bool) -> Result<usize, Fatal> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let rows = db.hints_sorted()?;
    for (rec, name) in &rows {
        if json {
            let rec = rec.as_slice() != b"0";
            emit(
                &mut out,
                &Obj::new().bytes("file", name).bool("recursive", rec).line(),
            );
        } else {
            emit(&mut out, &msg!(rec, "\t", name, "\n"));
        }
    }
    Ok(rows.len())
}

/// `-L` (pair None) or `-S MY PEER`.
pub fn files(
    cfg: &Config,
    db: &Db,
    pair: Option<(&[u8], &[u8])>,
    json: bool,
) -> Result<usize, Fatal> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0;
    for (name, checktxt) in db.all_files()? {
        let shown = match pair {
            None => cfg.selects(&name, false),
            Some((my, peer)) => cfg.matching_groups(false).any(|g| {
                g.myname.as_deref() == Some(my) && g.has_peer(peer) && g.selects(&name, false)
            }),
        };
        if !shown {
            continue;
        }
        let line = if json {
            crate::json::checktxt_fields(Obj::new().bytes("file", &name), &checktxt).line()
        } else {
            msg!(checktxt, "\t", name, "\n")
        };
        emit(&mut out, &line);
        n += 1;
    }
    Ok(n)
}

pub fn dirty(cfg: &Config, db: &Db, json: bool) -> Result<usize, Fatal> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0;
    for r in db.dirty_rows()? {
        if !cfg.selects(&r.filename, false) {
            continue;
        }
        if json {
            let o = Obj::new()
                .bytes("file", &r.filename)
                .bytes("myname", &r.myname)
                .bytes("peer", &r.peername)
                .bool("force", r.forced);
            emit(&mut out, &o.line());
            n += 1;
            continue;
        }
        let flag: &[u8] = if r.forced { b"force" } else { b"chary" };
        emit(
            &mut out,
            &msg!(
                flag, "\t", r.myname, "\t", r.peername, "\t", r.filename, "\n"
            ),
        );
        n += 1;
    }
    Ok(n)
}
