//! TensorFlow SavedModel (`tensorflow/core/protobuf/saved_model.proto`).
//!
//! A directory holding `saved_model.pb`: `SavedModel {1 saved_model_schema_version, 2
//! meta_graphs}`; each `MetaGraphDef` starts with `1 meta_info_def {4 tags, 5 tensorflow_version,
//! 6 tensorflow_git_version}`. This prober only runs on files named `saved_model.pb`; the model
//! detector reports the enclosing directory as the model.

use std::collections::BTreeSet;

use super::protobuf::{self, Wire};
use super::reader::Cursor;
use super::{limits, Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "tf_savedmodel";

/// The file name that defines a SavedModel directory.
pub const DEFINING_FILE: &str = "saved_model.pb";

fn meta_info(
    cur: &mut Cursor<'_>,
    end: u64,
    tags: &mut BTreeSet<String>,
    version: &mut Option<String>,
) -> Result<(), FormatError> {
    protobuf::walk(cur, FORMAT, end, |cur, field, wire, end| match (field, wire) {
        (4, Wire::Len) => {
            tags.insert(protobuf::string(cur, FORMAT, end, 256)?);
            Ok(())
        }
        (5, Wire::Len) => {
            *version = Some(protobuf::string(cur, FORMAT, end, 256)?);
            Ok(())
        }
        _ => protobuf::skip(cur, FORMAT, wire, end),
    })?;
    Ok(())
}

/// Identifies `saved_model.pb`.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    if input.name != DEFINING_FILE {
        return Ok(None);
    }
    let mut cur = Cursor::new(FORMAT, input.source, input.size, 0);
    let mut graphs = 0u64;
    let mut schema = None;
    let mut tags = BTreeSet::new();
    let mut tf_version = None;
    let ok = protobuf::walk(&mut cur, FORMAT, input.size, |cur, field, wire, end| {
        match (field, wire) {
            (1, Wire::Varint) => schema = Some(protobuf::varint(cur, FORMAT)?),
            (2, Wire::Len) => {
                graphs += 1;
                if graphs > limits::MAX_ENTRIES {
                    return Err(FormatError::bound(FORMAT, "meta graph count", graphs, limits::MAX_ENTRIES));
                }
                let n = protobuf::len(cur, FORMAT, end)?;
                let stop = cur.pos() + n;
                protobuf::walk(cur, FORMAT, stop, |cur, field, wire, end| match (field, wire) {
                    (1, Wire::Len) => {
                        let n = protobuf::len(cur, FORMAT, end)?;
                        let inner = cur.pos() + n;
                        meta_info(cur, inner, &mut tags, &mut tf_version)?;
                        cur.seek(inner)
                    }
                    _ => protobuf::skip(cur, FORMAT, wire, end),
                })?;
                cur.seek(stop)?;
            }
            (f, _) => return Err(FormatError::invalid(FORMAT, format!("unexpected top-level field {f}"))),
        }
        Ok(())
    })?;
    if !ok || graphs == 0 {
        return Err(FormatError::invalid(FORMAT, "saved_model.pb holds no meta graph"));
    }
    let mut md = ModelMetadata {
        producer: Some("tensorflow".into()),
        producer_version: tf_version,
        format_version: schema.map(|s| s.to_string()),
        ..ModelMetadata::default()
    };
    md.extra.insert("meta_graphs".into(), graphs.into());
    md.extra.insert("tags".into(), tags.into_iter().collect::<Vec<_>>().into());
    Ok(Some(Detection::new(ModelFormat::TfSavedmodel, md)))
}
