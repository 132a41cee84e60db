//! ONNX (`onnx/onnx.proto`).
//!
//! No magic: a `ModelProto` protobuf that begins with field 1 (`ir_version`, a small varint).
//! Identification walks every top-level field (skipping the graph's tensors by length), requires
//! a graph (7) and an operator set import (8), and reads the producer, opsets and
//! `metadata_props`. Inside the graph it reads the name and the initializers' shapes and types
//! for the parameter count and dtypes; it never loads tensor data.
//!
//! A structural error is reported for a file named `*.onnx`; any other file that merely starts
//! like ONNX and then breaks is not a model.

use std::collections::BTreeSet;

use super::protobuf::{self, Wire};
use super::reader::Cursor;
use super::{limits, Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "onnx";
/// Highest `ir_version` accepted (onnx 1.17 writes 10; leave room for the future).
const MAX_IR_VERSION: u64 = 32;
/// Strings longer than this are skipped rather than kept.
const MAX_KEPT: u64 = 4096;

/// `TensorProto.DataType` names.
fn data_type(t: u64) -> String {
    let name = match t {
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17 => "FLOAT8E4M3FN",
        18 => "FLOAT8E4M3FNUZ",
        19 => "FLOAT8E5M2",
        20 => "FLOAT8E5M2FNUZ",
        21 => "UINT4",
        22 => "INT4",
        23 => "FLOAT4E2M1",
        other => return format!("type_{other}"),
    };
    name.to_string()
}

#[derive(Default)]
struct Graph {
    name: Option<String>,
    initializers: u64,
    parameters: u64,
    dtypes: BTreeSet<String>,
    external_data: bool,
    /// `location` values of tensors stored outside the file (at most 32 kept).
    external_locations: BTreeSet<String>,
}

fn read_tensor(cur: &mut Cursor<'_>, end: u64, g: &mut Graph) -> Result<(), FormatError> {
    let mut elems: u64 = 1;
    let ok = protobuf::walk(cur, FORMAT, end, |cur, field, wire, end| match (field, wire) {
        (1, Wire::Varint) => {
            elems = elems.saturating_mul(protobuf::varint(cur, FORMAT)?);
            Ok(())
        }
        (1, Wire::Len) => {
            let n = protobuf::len(cur, FORMAT, end)?;
            let stop = cur.pos() + n;
            while cur.pos() < stop {
                elems = elems.saturating_mul(protobuf::varint(cur, FORMAT)?);
            }
            Ok(())
        }
        (2, Wire::Varint) => {
            g.dtypes.insert(data_type(protobuf::varint(cur, FORMAT)?));
            Ok(())
        }
        (13, Wire::Len) => {
            g.external_data = true;
            let n = protobuf::len(cur, FORMAT, end)?;
            let stop = cur.pos() + n;
            let (k, v) = read_prop(cur, stop)?;
            if k == "location" && g.external_locations.len() < 32 {
                g.external_locations.insert(v);
            }
            cur.seek(stop)
        }
        (14, Wire::Varint) => {
            if protobuf::varint(cur, FORMAT)? == 1 {
                g.external_data = true;
            }
            Ok(())
        }
        _ => protobuf::skip(cur, FORMAT, wire, end),
    })?;
    if !ok {
        return Err(FormatError::invalid(FORMAT, "initializer has an invalid field"));
    }
    g.initializers += 1;
    g.parameters = g.parameters.saturating_add(elems);
    Ok(())
}

fn read_graph(cur: &mut Cursor<'_>, end: u64) -> Result<Graph, FormatError> {
    let mut g = Graph::default();
    let ok = protobuf::walk(cur, FORMAT, end, |cur, field, wire, end| match (field, wire) {
        (2, Wire::Len) => {
            g.name = Some(protobuf::string(cur, FORMAT, end, MAX_KEPT)?);
            Ok(())
        }
        (5, Wire::Len) => {
            if g.initializers >= limits::MAX_ENTRIES {
                return Err(FormatError::bound(FORMAT, "initializer count", g.initializers, limits::MAX_ENTRIES));
            }
            let n = protobuf::len(cur, FORMAT, end)?;
            let stop = cur.pos() + n;
            read_tensor(cur, stop, &mut g)?;
            cur.seek(stop)
        }
        _ => protobuf::skip(cur, FORMAT, wire, end),
    })?;
    if !ok {
        return Err(FormatError::invalid(FORMAT, "graph has an invalid field"));
    }
    Ok(g)
}

fn read_opset(cur: &mut Cursor<'_>, end: u64) -> Result<(String, u64), FormatError> {
    let mut domain = String::new();
    let mut version = 0;
    protobuf::walk(cur, FORMAT, end, |cur, field, wire, end| match (field, wire) {
        (1, Wire::Len) => {
            domain = protobuf::string(cur, FORMAT, end, MAX_KEPT)?;
            Ok(())
        }
        (2, Wire::Varint) => {
            version = protobuf::varint(cur, FORMAT)?;
            Ok(())
        }
        _ => protobuf::skip(cur, FORMAT, wire, end),
    })?;
    Ok((domain, version))
}

fn read_prop(cur: &mut Cursor<'_>, end: u64) -> Result<(String, String), FormatError> {
    let (mut k, mut v) = (String::new(), String::new());
    protobuf::walk(cur, FORMAT, end, |cur, field, wire, end| match (field, wire) {
        (1, Wire::Len) => {
            k = protobuf::string(cur, FORMAT, end, MAX_KEPT)?;
            Ok(())
        }
        (2, Wire::Len) => {
            v = protobuf::string(cur, FORMAT, end, MAX_KEPT)?;
            Ok(())
        }
        _ => protobuf::skip(cur, FORMAT, wire, end),
    })?;
    Ok((k, v))
}

fn parse(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let mut cur = Cursor::new(FORMAT, input.source, input.size, 0);
    let end = input.size;
    let mut md = ModelMetadata::default();
    let mut has_graph = false;
    let mut has_opset = false;
    let mut props = 0u64;
    let mut graph = None;
    let ok = protobuf::walk(&mut cur, FORMAT, end, |cur, field, wire, end| {
        match (field, wire) {
            (1, Wire::Varint) => md.ir_version = Some(protobuf::varint(cur, FORMAT)?),
            (2, Wire::Len) => md.producer = Some(protobuf::string(cur, FORMAT, end, MAX_KEPT)?),
            (3, Wire::Len) => md.producer_version = Some(protobuf::string(cur, FORMAT, end, MAX_KEPT)?),
            (4, Wire::Len) => {
                let d = protobuf::string(cur, FORMAT, end, MAX_KEPT)?;
                md.extra.insert("domain".into(), d.into());
            }
            (5, Wire::Varint) => {
                let v = protobuf::varint(cur, FORMAT)?;
                md.extra.insert("model_version".into(), v.into());
            }
            (7, Wire::Len) => {
                let n = protobuf::len(cur, FORMAT, end)?;
                let stop = cur.pos() + n;
                graph = Some(read_graph(cur, stop)?);
                has_graph = true;
                cur.seek(stop)?;
            }
            (8, Wire::Len) => {
                let n = protobuf::len(cur, FORMAT, end)?;
                let stop = cur.pos() + n;
                let (domain, version) = read_opset(cur, stop)?;
                cur.seek(stop)?;
                has_opset = true;
                if domain.is_empty() || domain == "ai.onnx" {
                    md.opset = Some(version);
                } else {
                    md.extra.insert(format!("opset.{domain}"), version.into());
                }
            }
            (14, Wire::Len) => {
                props += 1;
                if props > limits::MAX_ENTRIES {
                    return Err(FormatError::bound(FORMAT, "metadata_props count", props, limits::MAX_ENTRIES));
                }
                let n = protobuf::len(cur, FORMAT, end)?;
                let stop = cur.pos() + n;
                let (k, v) = read_prop(cur, stop)?;
                cur.seek(stop)?;
                match k.to_ascii_lowercase().as_str() {
                    "license" => md.license = Some(v),
                    "name" | "model_name" => md.name = Some(v),
                    "architecture" => md.architecture = Some(v),
                    _ if md.extra.len() < 64 => {
                        md.extra.insert(format!("meta.{k}"), v.into());
                    }
                    _ => {}
                }
            }
            (6 | 20 | 21 | 25, Wire::Len) => protobuf::skip(cur, FORMAT, wire, end)?,
            (f, _) if f <= 64 => protobuf::skip(cur, FORMAT, wire, end)?,
            (f, _) => return Err(FormatError::invalid(FORMAT, format!("unexpected top-level field {f}"))),
        }
        Ok(())
    })?;
    if !ok || !has_graph || !has_opset || md.ir_version.is_none() {
        return Ok(None);
    }
    if let Some(g) = graph {
        if md.name.is_none() {
            md.name = g.name.filter(|n| !n.is_empty());
        }
        md.tensor_count = Some(g.initializers);
        md.parameters = Some(g.parameters);
        md.dtypes = g.dtypes.into_iter().collect();
        if g.external_data {
            md.extra.insert("external_data".into(), true.into());
            let locations: Vec<serde_json::Value> = g.external_locations.into_iter().map(Into::into).collect();
            md.extra.insert("external_locations".into(), locations.into());
        }
    }
    Ok(Some(Detection::new(ModelFormat::Onnx, md)))
}

/// Identifies an ONNX model.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    // Field 1 (ir_version), varint, with a small value.
    let (Some(0x08), Some(&v)) = (input.head.first(), input.head.get(1)) else {
        return Ok(None);
    };
    if v == 0 || u64::from(v) > MAX_IR_VERSION {
        return Ok(None);
    }
    match parse(input) {
        Ok(found) => Ok(found),
        Err(e) if input.extension() == "onnx" => Err(e),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn absurd_length_is_an_error_for_onnx_names() {
        let mut b = vec![0x08, 0x07, 0x3a];
        b.extend([0xff; 9]);
        b.push(0x01);
        assert!(crate::formats::identify_bytes("m.onnx", &b).is_err());
        assert_eq!(crate::formats::identify_bytes("m.bin", &b).unwrap(), None);
    }
}
