//! Core ML `.mlmodel` (`coremltools/mlmodel/format/Model.proto`).
//!
//! A protobuf `Model`: field 1 `specificationVersion` (varint), field 2 `description`, then one
//! model-type field numbered 200 and above (`pipelineClassifier` = 200 … `neuralNetwork` = 500,
//! …). Identification requires all three and a top level that parses to the end.

use super::protobuf::{self, Wire};
use super::reader::Cursor;
use super::{Detection, FormatError, ModelFormat, ModelMetadata, ProbeInput};

const FORMAT: &str = "coreml";
/// Highest specification version accepted (Core ML 8 writes 9).
const MAX_SPEC: u64 = 32;

/// Names of the model-type fields (Model.proto `oneof Type`).
fn model_type(field: u64) -> Option<&'static str> {
    Some(match field {
        200 => "pipelineClassifier",
        201 => "pipelineRegressor",
        202 => "pipeline",
        300 => "glmRegressor",
        301 => "supportVectorRegressor",
        302 => "treeEnsembleRegressor",
        303 => "neuralNetworkRegressor",
        304 => "bayesianProbitRegressor",
        400 => "glmClassifier",
        401 => "supportVectorClassifier",
        402 => "treeEnsembleClassifier",
        403 => "neuralNetworkClassifier",
        404 => "kNearestNeighborsClassifier",
        500 => "neuralNetwork",
        501 => "itemSimilarityRecommender",
        502 => "mlProgram",
        555 => "customModel",
        556 => "linkedModel",
        560 => "classConfidenceThresholding",
        600 => "oneHotEncoder",
        601 => "imputer",
        602 => "featureVectorizer",
        603 => "dictVectorizer",
        604 => "scaler",
        606 => "categoricalMapping",
        607 => "normalizer",
        609 => "arrayFeatureExtractor",
        610 => "nonMaximumSuppression",
        900 => "identity",
        2000..=2999 => "coreMLModels",
        3000..=3999 => "sklearn",
        _ => return None,
    })
}

/// Reads `ModelDescription.metadata` (field 100): 1 shortDescription, 2 versionString,
/// 3 author, 4 license.
fn description(cur: &mut Cursor<'_>, end: u64, md: &mut ModelMetadata) -> Result<(), FormatError> {
    protobuf::walk(cur, FORMAT, end, |cur, field, wire, end| match (field, wire) {
        (100, Wire::Len) => {
            let n = protobuf::len(cur, FORMAT, end)?;
            let stop = cur.pos() + n;
            protobuf::walk(cur, FORMAT, stop, |cur, field, wire, end| {
                match (field, wire) {
                    (1, Wire::Len) => md.name = Some(protobuf::string(cur, FORMAT, end, 4096)?),
                    (2, Wire::Len) => {
                        let v = protobuf::string(cur, FORMAT, end, 256)?;
                        md.extra.insert("version".into(), v.into());
                    }
                    (3, Wire::Len) => {
                        let v = protobuf::string(cur, FORMAT, end, 4096)?;
                        md.extra.insert("author".into(), v.into());
                    }
                    (4, Wire::Len) => md.license = Some(protobuf::string(cur, FORMAT, end, 4096)?),
                    _ => protobuf::skip(cur, FORMAT, wire, end)?,
                }
                Ok(())
            })?;
            cur.seek(stop)
        }
        _ => protobuf::skip(cur, FORMAT, wire, end),
    })?;
    Ok(())
}

/// Identifies a Core ML model specification.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let (Some(0x08), Some(&v)) = (input.head.first(), input.head.get(1)) else {
        return Ok(None);
    };
    if v == 0 || u64::from(v) > MAX_SPEC {
        return Ok(None);
    }
    let mut cur = Cursor::new(FORMAT, input.source, input.size, 0);
    let mut spec = None;
    let mut has_description = false;
    let mut kind = None;
    let mut md = ModelMetadata::default();
    let walked = protobuf::walk(&mut cur, FORMAT, input.size, |cur, field, wire, end| {
        match (field, wire) {
            (1, Wire::Varint) => spec = Some(protobuf::varint(cur, FORMAT)?),
            (2, Wire::Len) => {
                has_description = true;
                let n = protobuf::len(cur, FORMAT, end)?;
                let stop = cur.pos() + n;
                description(cur, stop, &mut md)?;
                cur.seek(stop)?;
            }
            (10, Wire::Varint) => {
                protobuf::varint(cur, FORMAT)?;
            }
            (f, Wire::Len) if model_type(f).is_some() => {
                kind = model_type(f);
                protobuf::skip(cur, FORMAT, wire, end)?;
            }
            (f, _) => return Err(FormatError::invalid(FORMAT, format!("unexpected field {f}"))),
        }
        Ok(())
    });
    match (walked, spec, has_description, kind) {
        (Ok(true), Some(spec), true, Some(kind)) => {
            md.architecture = Some(kind.to_string());
            md.format_version = Some(spec.to_string());
            Ok(Some(Detection::new(ModelFormat::Coreml, md)))
        }
        (Err(e), _, _, _) if input.extension() == "mlmodel" => Err(e),
        _ => Ok(None),
    }
}
