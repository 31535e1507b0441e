//! Reading a table larger than memory a chunk of rows at a time, from a local file: CSV records
//! are split at newlines outside quotes and each chunk parsed with the header; Parquet is read a
//! slice at a time. Columns whose types matter are read as the caller says, so every chunk has
//! the same schema.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use crate::error::DataError;
use crate::io::TableFormat;

/// A table read a chunk of rows at a time.
pub struct TableChunks {
    source: Source,
    chunk_rows: usize,
    types: Schema,
    uri: String,
}

enum Source {
    Csv {
        reader: BufReader<File>,
        header: Vec<u8>,
        read_bytes: u64,
        total_bytes: u64,
        done: bool,
    },
    Parquet {
        path: std::path::PathBuf,
        next_row: usize,
        rows: usize,
    },
}

impl TableChunks {
    /// Opens the local file `path` of `format` (`uri` names it in messages); `types` fixes the
    /// type of the columns it names.
    pub fn open(
        path: &Path,
        uri: &str,
        format: TableFormat,
        chunk_rows: usize,
        types: Vec<(String, DataType)>,
    ) -> Result<Self, DataError> {
        let source = match format {
            TableFormat::Csv => {
                let file = File::open(path).map_err(mlops_core::StoreError::from)?;
                let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                let mut reader = BufReader::with_capacity(1 << 20, file);
                let mut header = Vec::new();
                let read = read_record(&mut reader, &mut header)?;
                if read == 0 {
                    return Err(DataError::invalid(format!("`{uri}` is empty")));
                }
                Source::Csv {
                    reader,
                    header,
                    read_bytes: read as u64,
                    total_bytes,
                    done: false,
                }
            }
            TableFormat::Parquet => {
                let file = File::open(path).map_err(mlops_core::StoreError::from)?;
                let rows = ParquetReader::new(file)
                    .num_rows()
                    .map_err(|e| malformed(uri, format, e))?;
                Source::Parquet {
                    path: path.to_path_buf(),
                    next_row: 0,
                    rows,
                }
            }
        };
        Ok(Self {
            source,
            chunk_rows: chunk_rows.max(1),
            types: types
                .into_iter()
                .map(|(name, dtype)| Field::new(name.into(), dtype))
                .collect(),
            uri: uri.to_string(),
        })
    }

    /// The share of the table read so far, 0 to 1.
    pub fn fraction_read(&self) -> f64 {
        match &self.source {
            Source::Csv {
                read_bytes,
                total_bytes,
                ..
            } => *read_bytes as f64 / (*total_bytes).max(1) as f64,
            Source::Parquet { next_row, rows, .. } => *next_row as f64 / (*rows).max(1) as f64,
        }
    }

    /// The next chunk, or None at the end.
    pub fn next_chunk(&mut self) -> Result<Option<DataFrame>, DataError> {
        let uri = self.uri.clone();
        match &mut self.source {
            Source::Csv {
                reader,
                header,
                read_bytes,
                done,
                ..
            } => {
                if *done {
                    return Ok(None);
                }
                let mut bytes = header.clone();
                let mut rows = 0;
                while rows < self.chunk_rows {
                    let mut record = Vec::new();
                    let n = read_record(reader, &mut record)?;
                    if n == 0 {
                        *done = true;
                        break;
                    }
                    *read_bytes += n as u64;
                    if record.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    bytes.extend_from_slice(&record);
                    rows += 1;
                }
                if rows == 0 {
                    return Ok(None);
                }
                let df = CsvReadOptions::default()
                    .with_has_header(true)
                    .with_infer_schema_length(Some(crate::io::INFER_SCHEMA_ROWS))
                    .with_schema_overwrite(Some(Arc::new(self.types.clone())))
                    .into_reader_with_file_handle(Cursor::new(bytes))
                    .finish()
                    .map_err(|e| malformed(&uri, TableFormat::Csv, e))?;
                Ok(Some(df))
            }
            Source::Parquet {
                path,
                next_row,
                rows,
            } => {
                if *next_row >= *rows {
                    return Ok(None);
                }
                let file = File::open(&*path).map_err(mlops_core::StoreError::from)?;
                let len = self.chunk_rows.min(*rows - *next_row);
                let mut df = ParquetReader::new(file)
                    .with_slice(Some((*next_row, len)))
                    .finish()
                    .map_err(|e| malformed(&uri, TableFormat::Parquet, e))?;
                *next_row += len;
                for field in self.types.iter_fields() {
                    if let Ok(c) = df.column(field.name()) {
                        let cast = c.cast(field.dtype())?;
                        df.with_column(cast)?;
                    }
                }
                Ok(Some(df))
            }
        }
    }
}

/// Reads one CSV record (up to a newline outside quotes) into `out`; returns the bytes read (0 at
/// the end).
fn read_record(reader: &mut BufReader<File>, out: &mut Vec<u8>) -> Result<usize, DataError> {
    let mut total = 0;
    let mut quoted = false;
    loop {
        let before = out.len();
        let n = reader
            .read_until(b'\n', out)
            .map_err(mlops_core::StoreError::from)?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
        // An odd number of quotes leaves a field open: its newline belongs to the value.
        quoted ^= out[before..].iter().filter(|b| **b == b'"').count() % 2 == 1;
        if !quoted {
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            return Ok(total);
        }
    }
}

fn malformed(uri: &str, format: TableFormat, e: PolarsError) -> DataError {
    DataError::Malformed {
        uri: uri.into(),
        format: format.extension(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_of_a_csv_with_quoted_newlines_make_the_whole_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("id,note,x\n");
        for i in 0..25 {
            let note = if i % 7 == 0 {
                format!("\"line one\nline two, with a comma {i}\"")
            } else {
                format!("plain {i}")
            };
            text.push_str(&format!("{i},{note},{}\n", i as f64 / 2.0));
        }
        std::fs::write(&path, &text).unwrap();
        let types = vec![("x".to_string(), DataType::Float64)];
        let mut chunks =
            TableChunks::open(&path, "t.csv", TableFormat::Csv, 4, types.clone()).unwrap();
        let mut ids = Vec::new();
        let mut notes = Vec::new();
        let mut sizes = Vec::new();
        while let Some(df) = chunks.next_chunk().unwrap() {
            sizes.push(df.height());
            assert_eq!(df.column("x").unwrap().dtype(), &DataType::Float64);
            ids.extend(df.column("id").unwrap().i64().unwrap().into_no_null_iter());
            notes.extend(
                df.column("note")
                    .unwrap()
                    .str()
                    .unwrap()
                    .iter()
                    .map(|v| v.unwrap().to_string()),
            );
        }
        assert_eq!(sizes, vec![4, 4, 4, 4, 4, 4, 1]);
        assert_eq!(ids, (0..25).collect::<Vec<i64>>());
        assert_eq!(notes[7], "line one\nline two, with a comma 7");
        assert!((chunks.fraction_read() - 1.0).abs() < 1e-9);

        let parquet = dir.path().join("t.parquet");
        let mut whole = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path))
            .unwrap()
            .finish()
            .unwrap();
        ParquetWriter::new(File::create(&parquet).unwrap())
            .finish(&mut whole)
            .unwrap();
        let mut chunks =
            TableChunks::open(&parquet, "t.parquet", TableFormat::Parquet, 10, types).unwrap();
        let mut total = 0;
        while let Some(df) = chunks.next_chunk().unwrap() {
            total += df.height();
        }
        assert_eq!(total, 25);
    }
}
