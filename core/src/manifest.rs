//! The manifest loader: real multi-document Kubernetes YAML into [`Object`]s, with errors and
//! warnings that name the file, line, column and field path.
//!
//! How a file is read, and why:
//! 1. The YAML event parser (granit-parser, the one inside serde-saphyr) builds a light tree of
//!    every document with the position of each key and value. YAML syntax errors stop here.
//! 2. For each non-empty document, `apiVersion` and `kind` are read from the tree first, so that
//!    the concrete type is known before deserializing: an internally tagged enum would lose the
//!    error's location.
//! 3. The document's own text is deserialized into that type by serde-saphyr, whose errors carry
//!    a line and column; the tree turns that position into a field path.
//! 4. Fields that the type does not know are collected by `serde_ignored` while deserializing
//!    and reported as warnings at their key's position: a manifest field the model does not
//!    simulate is never dropped silently. A field whose value is null or empty (such as the
//!    `creationTimestamp: null` that kubectl writes) carries nothing and is skipped quietly.
//!    Wall-clock times (`creationTimestamp: 2024-...`, `lastTransitionTime`) are such unknown
//!    fields: the model keeps virtual `...Ns` times, so a real time is reported and ignored.
//! 5. The object is validated ([`Object::validate`]) and every error is mapped back to the line
//!    of its field. Defaults are not applied: that is the API server's job.
//!
//! The loader never panics on any input (a property test feeds it arbitrary text), and bounds
//! its work: input size, nesting depth and serde-saphyr's own budget for aliases.

use crate::objects::custom::CustomObjectBody;
use crate::objects::{
    ConfigMap, Deployment, EndpointSlice, HorizontalPodAutoscaler, Job, Kind, Lease, Namespace, Node, Object, Pod,
    PodDisruptionBudget, ReplicaSet, Secret, Service,
};
use crate::objects::{CustomKind, CustomObject};
use serde::de::DeserializeOwned;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
use serde_saphyr::MessageFormatter;
use std::collections::BTreeMap;
use std::fmt;

/// Largest manifest file accepted, in bytes: scenarios are hand-written, so anything bigger is a
/// mistake, and the bound keeps a fuzzer's inputs cheap.
pub const MANIFEST_SIZE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Deepest nesting of mappings and sequences accepted; real manifests stay below 20.
pub const MANIFEST_DEPTH_MAX: usize = 64;

/// A position in a manifest file: 1-based line and column, as editors show them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceLocation {
    /// The file label given to [`load_manifests`].
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem that stops a manifest from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDiagnostic {
    /// Where it is.
    pub location: SourceLocation,
    /// The field, such as `spec.replicas`, when the problem belongs to one.
    pub path: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ManifestDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) if !path.is_empty() => {
                write!(f, "{}: {}: {}", self.location, path, self.message)
            }
            _ => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

/// Why a manifest file did not load: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// At least one problem.
    pub diagnostics: Vec<ManifestDiagnostic>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.diagnostics.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// A field of a manifest that the model does not simulate and ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestWarning {
    /// Where the field's key is.
    pub location: SourceLocation,
    /// The field, such as `spec.template.spec.affinity`.
    pub path: String,
    /// Why it is ignored.
    pub message: String,
}

impl fmt::Display for ManifestWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {} {}", self.location, self.path, self.message)
    }
}

/// An object and where its document starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedObject {
    /// The object, without defaults.
    pub object: Object,
    /// The position of the document's first key.
    pub location: SourceLocation,
}

/// The objects of a manifest file, in file order, and the warnings about ignored fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadedManifests {
    /// One per non-empty document.
    pub objects: Vec<LoadedObject>,
    /// Unsimulated fields, in file order.
    pub warnings: Vec<ManifestWarning>,
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    line: usize,
    column: usize,
}

/// A YAML node with its position; only what the loader needs to find paths and locations.
#[derive(Debug)]
struct YamlNode {
    position: Position,
    value: YamlValue,
}

#[derive(Debug)]
enum YamlValue {
    Scalar { text: String, plain: bool },
    Sequence(Vec<YamlNode>),
    Mapping(Vec<YamlEntry>),
    Alias,
}

#[derive(Debug)]
struct YamlEntry {
    key: String,
    key_position: Position,
    value: YamlNode,
}

impl YamlNode {
    /// Null, `~`, an empty string or an empty collection: nothing that ignoring could lose.
    fn is_empty_value(&self) -> bool {
        match &self.value {
            YamlValue::Scalar { text, plain } => {
                (*plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")) || text.is_empty()
            }
            YamlValue::Sequence(items) => items.is_empty(),
            YamlValue::Mapping(entries) => entries.is_empty(),
            YamlValue::Alias => false,
        }
    }

    fn get(&self, key: &str) -> Option<&YamlEntry> {
        match &self.value {
            YamlValue::Mapping(entries) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }

    fn describe(&self) -> &'static str {
        match &self.value {
            YamlValue::Scalar { .. } => "a scalar",
            YamlValue::Sequence(_) => "a sequence",
            YamlValue::Mapping(_) => "a mapping",
            YamlValue::Alias => "an alias",
        }
    }
}

/// One YAML document: its tree and the byte range of its text.
struct YamlDocument {
    root: YamlNode,
    text_start_byte: usize,
    text_end_byte: usize,
}

/// A collection being built while its events arrive.
enum Frame {
    Sequence { position: Position, items: Vec<YamlNode> },
    Mapping { position: Position, entries: Vec<YamlEntry>, pending_key: Option<(String, Position)> },
}

fn position_of(marker: &serde_saphyr::granit_parser::Marker) -> Position {
    Position { line: marker.line(), column: marker.col() + 1 }
}

/// Parses every document of the text into position-carrying trees, or returns the YAML syntax
/// error at its position.
fn parse_documents(file_label: &str, text: &str) -> Result<Vec<YamlDocument>, ManifestDiagnostic> {
    let mut documents = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<YamlNode> = None;
    let mut document_start_byte = 0usize;
    let mut last_end_byte = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| ManifestDiagnostic {
            location: SourceLocation {
                file: file_label.to_string(),
                line: error.marker().line(),
                column: error.marker().col() + 1,
            },
            path: None,
            message: format!("YAML syntax error: {}", error.info()),
        })?;
        let position = position_of(&span.start);
        let end_byte = span.end.byte_offset().unwrap_or(last_end_byte);
        let completed = match event {
            Event::DocumentStart(..) => {
                root = None;
                document_start_byte = span.start.byte_offset().unwrap_or(last_end_byte);
                None
            }
            Event::DocumentEnd => {
                if let Some(node) = root.take() {
                    documents.push(YamlDocument {
                        root: node,
                        text_start_byte: document_start_byte,
                        text_end_byte: last_end_byte.max(document_start_byte),
                    });
                }
                None
            }
            Event::Scalar(value, style, _, _) => Some(YamlNode {
                position,
                value: YamlValue::Scalar { text: value.into_owned(), plain: style == ScalarStyle::Plain },
            }),
            Event::Alias(_) | Event::UnresolvedAlias(_) => Some(YamlNode { position, value: YamlValue::Alias }),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MANIFEST_DEPTH_MAX {
                    return Err(ManifestDiagnostic {
                        location: SourceLocation {
                            file: file_label.to_string(),
                            line: position.line,
                            column: position.column,
                        },
                        path: None,
                        message: format!("nesting deeper than {MANIFEST_DEPTH_MAX} levels"),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Sequence { position, items: Vec::new() }
                } else {
                    Frame::Mapping { position, entries: Vec::new(), pending_key: None }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Sequence { position, items }) => {
                    Some(YamlNode { position, value: YamlValue::Sequence(items) })
                }
                Some(Frame::Mapping { position, entries, .. }) => {
                    Some(YamlNode { position, value: YamlValue::Mapping(entries) })
                }
                None => None,
            },
            _ => None,
        };
        if completed.is_some() {
            last_end_byte = last_end_byte.max(end_byte);
        }
        if let Some(node) = completed {
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Sequence { items, .. }) => items.push(node),
                Some(Frame::Mapping { entries, pending_key, .. }) => match pending_key.take() {
                    None => {
                        let key = match &node.value {
                            YamlValue::Scalar { text, .. } => text.clone(),
                            _ => "<complex key>".to_string(),
                        };
                        *pending_key = Some((key, node.position));
                    }
                    Some((key, key_position)) => entries.push(YamlEntry { key, key_position, value: node }),
                },
            }
        }
    }
    Ok(documents)
}

/// Where each field path of a document is: its key's position and its value's position.
#[derive(Default)]
struct PathIndex {
    by_path: BTreeMap<String, (Option<Position>, Position)>,
    by_position: Vec<(Position, usize, String)>,
    by_key_position: BTreeMap<Position, String>,
}

impl PathIndex {
    fn build(root: &YamlNode) -> Self {
        let mut index = PathIndex::default();
        index.add(String::new(), None, root);
        index.by_position.sort();
        index
    }

    fn add(&mut self, path: String, key_position: Option<Position>, node: &YamlNode) {
        self.by_position.push((node.position, path.len(), path.clone()));
        match &node.value {
            YamlValue::Mapping(entries) => {
                for entry in entries {
                    let child = if path.is_empty() { entry.key.clone() } else { format!("{path}.{}", entry.key) };
                    self.by_key_position.insert(entry.key_position, child.clone());
                    self.add(child, Some(entry.key_position), &entry.value);
                }
            }
            YamlValue::Sequence(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.add(format!("{path}[{index}]"), Some(item.position), item);
                }
            }
            YamlValue::Scalar { .. } | YamlValue::Alias => {}
        }
        self.by_path.entry(path).or_insert((key_position, node.position));
    }

    /// The field at a position: the field whose key is there, else the shortest path whose value
    /// starts exactly there, else the last field starting before it.
    fn path_at(&self, position: Position) -> Option<&str> {
        // serde-saphyr reports a bad value of a block mapping entry at the entry's key.
        if let Some(path) = self.by_key_position.get(&position) {
            return Some(path);
        }
        let after = self.by_position.partition_point(|(p, _, _)| *p < position);
        if let Some((p, _, path)) = self.by_position.get(after) {
            if *p == position {
                return Some(path);
            }
        }
        after.checked_sub(1).and_then(|i| self.by_position.get(i)).map(|(_, _, path)| path.as_str())
    }

    /// The value position of a path, or of its nearest ancestor present in the document.
    fn value_position(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some((_, value)) = self.by_path.get(current) {
                return Some(*value);
            }
            let cut = current.rfind(['.', '['])?;
            current = &current[..cut];
        }
    }

    /// The text of the scalar at a path, if the path leads to a scalar.
    fn scalar_at(&self, root: &YamlNode, path: &str) -> Option<String> {
        let mut node = root;
        let mut rest = path;
        while !rest.is_empty() {
            let next = if let Some(after) = rest.strip_prefix('[') {
                let (digits, tail) = after.split_once(']')?;
                rest = tail.strip_prefix('.').unwrap_or(tail);
                match &node.value {
                    YamlValue::Sequence(items) => items.get(digits.parse::<usize>().ok()?)?,
                    _ => return None,
                }
            } else {
                let cut = rest.find(['.', '[']).unwrap_or(rest.len());
                let (key, tail) = rest.split_at(cut);
                rest = tail.strip_prefix('.').unwrap_or(tail);
                &node.get(key)?.value
            };
            node = next;
        }
        match &node.value {
            YamlValue::Scalar { text, .. } => Some(text.clone()),
            _ => None,
        }
    }

    fn key_position(&self, path: &str) -> Option<Position> {
        self.by_path.get(path).map(|(key, value)| key.unwrap_or(*value))
    }

    fn node_is_empty(root: &YamlNode, segments: &[PathSegment]) -> bool {
        let mut node = root;
        for segment in segments {
            let next = match (segment, &node.value) {
                (PathSegment::Key(key), YamlValue::Mapping(entries)) => {
                    entries.iter().find(|e| &e.key == key).map(|e| &e.value)
                }
                (PathSegment::Index(index), YamlValue::Sequence(items)) => items.get(*index),
                _ => None,
            };
            match next {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.is_empty_value()
    }
}

enum PathSegment {
    Key(String),
    Index(usize),
}

fn segments_of(path: &serde_ignored::Path<'_>, out: &mut Vec<PathSegment>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            segments_of(parent, out);
            out.push(PathSegment::Index(*index));
        }
        Path::Map { parent, key } => {
            segments_of(parent, out);
            out.push(PathSegment::Key(key.clone()));
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            segments_of(parent, out)
        }
    }
}

fn format_segments(segments: &[PathSegment]) -> String {
    let mut text = String::new();
    for segment in segments {
        match segment {
            PathSegment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            PathSegment::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// Everything learned from one document.
struct DocumentContext<'a> {
    file_label: &'a str,
    index: PathIndex,
}

impl DocumentContext<'_> {
    fn location(&self, position: Position) -> SourceLocation {
        SourceLocation { file: self.file_label.to_string(), line: position.line, column: position.column }
    }

    fn diagnostic(&self, position: Position, path: Option<&str>, message: String) -> ManifestDiagnostic {
        ManifestDiagnostic { location: self.location(position), path: path.map(str::to_string), message }
    }
}

/// Reads a document's `apiVersion` and `kind` and resolves them to a supported kind.
fn resolve_kind(
    context: &DocumentContext<'_>,
    root: &YamlNode,
    custom_kinds: &[CustomKind],
) -> Result<Kind, ManifestDiagnostic> {
    if !matches!(root.value, YamlValue::Mapping(_)) {
        return Err(context.diagnostic(
            root.position,
            None,
            format!("expected a Kubernetes object (a mapping with apiVersion and kind), found {}", root.describe()),
        ));
    }
    let scalar_field = |field: &str| -> Result<Option<(String, Position)>, ManifestDiagnostic> {
        match root.get(field) {
            None => Ok(None),
            Some(entry) => match &entry.value.value {
                YamlValue::Scalar { text, .. } => Ok(Some((text.clone(), entry.value.position))),
                _ => Err(context.diagnostic(
                    entry.value.position,
                    Some(field),
                    format!("expected a string, found {}", entry.value.describe()),
                )),
            },
        }
    };
    let (kind_name, kind_position) = scalar_field("kind")?.ok_or_else(|| {
        context.diagnostic(
            root.position,
            Some("kind"),
            format!("missing field; every object needs apiVersion and kind (supported: {})", Kind::supported_list()),
        )
    })?;
    let registered: Vec<&CustomKind> = custom_kinds.iter().filter(|custom| custom.kind == kind_name).collect();
    if !registered.is_empty() {
        let (api_version, api_version_position) = scalar_field("apiVersion")?.ok_or_else(|| {
            context.diagnostic(
                root.position,
                Some("apiVersion"),
                format!("missing field; {kind_name} needs apiVersion: {}", registered[0].api_version),
            )
        })?;
        return match registered.iter().find(|custom| custom.api_version == api_version) {
            Some(custom) => Ok(Kind::Custom(**custom)),
            None => Err(context.diagnostic(
                api_version_position,
                Some("apiVersion"),
                format!(
                    "{api_version:?} is not a registered version of the custom kind {kind_name}; use {}",
                    registered.iter().map(|custom| custom.api_version).collect::<Vec<_>>().join(" or ")
                ),
            )),
        };
    }
    let kind = Kind::from_kind_name(&kind_name).ok_or_else(|| {
        // Without registered kinds the message stays what it always was (the error corpus pins it).
        let custom_hint = if custom_kinds.is_empty() {
            String::new()
        } else {
            format!(
                "; registered custom kinds: {}",
                custom_kinds
                    .iter()
                    .map(|custom| format!("{} {}", custom.api_version, custom.kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        context.diagnostic(
            kind_position,
            Some("kind"),
            format!("unknown kind {kind_name:?}; supported kinds: {}{custom_hint}", Kind::supported_list()),
        )
    })?;
    let (api_version, api_version_position) = scalar_field("apiVersion")?.ok_or_else(|| {
        context.diagnostic(
            root.position,
            Some("apiVersion"),
            format!("missing field; {kind} needs apiVersion: {}", kind.api_version()),
        )
    })?;
    if api_version != kind.api_version() {
        return Err(context.diagnostic(
            api_version_position,
            Some("apiVersion"),
            format!("{api_version:?} is not supported for {kind}; use {}", kind.api_version()),
        ));
    }
    Ok(kind)
}

/// Deserializes a document's text as `T`, collecting the paths serde ignored.
fn deserialize_document<T: DeserializeOwned>(
    document_text: &str,
) -> Result<(T, Vec<Vec<PathSegment>>), serde_saphyr::Error> {
    let mut ignored = Vec::new();
    let value = serde_saphyr::with_deserializer_from_str(document_text, |deserializer| {
        serde_ignored::deserialize(deserializer, |path| {
            let mut segments = Vec::new();
            segments_of(&path, &mut segments);
            ignored.push(segments);
        })
    })?;
    Ok((value, ignored))
}

fn deserialize_object(kind: Kind, document_text: &str) -> Result<(Object, Vec<Vec<PathSegment>>), serde_saphyr::Error> {
    fn typed<T: DeserializeOwned + Into<Object>>(
        text: &str,
    ) -> Result<(Object, Vec<Vec<PathSegment>>), serde_saphyr::Error> {
        deserialize_document::<T>(text).map(|(value, ignored)| (value.into(), ignored))
    }
    match kind {
        Kind::Pod => typed::<Pod>(document_text),
        Kind::ReplicaSet => typed::<ReplicaSet>(document_text),
        Kind::Deployment => typed::<Deployment>(document_text),
        Kind::Service => typed::<Service>(document_text),
        Kind::EndpointSlice => typed::<EndpointSlice>(document_text),
        Kind::Node => typed::<Node>(document_text),
        Kind::Lease => typed::<Lease>(document_text),
        Kind::Namespace => typed::<Namespace>(document_text),
        Kind::ConfigMap => typed::<ConfigMap>(document_text),
        Kind::Secret => typed::<Secret>(document_text),
        Kind::Job => typed::<Job>(document_text),
        Kind::PodDisruptionBudget => typed::<PodDisruptionBudget>(document_text),
        Kind::HorizontalPodAutoscaler => typed::<HorizontalPodAutoscaler>(document_text),
        Kind::Custom(custom) => deserialize_document::<CustomObjectBody>(document_text).map(|(body, ignored)| {
            let object = CustomObject { kind: custom, metadata: body.metadata, spec: body.spec, status: body.status };
            (Object::Custom(object), ignored)
        }),
    }
}

/// The text of one document, preceded by as many newlines as lines before it, so that
/// serde-saphyr reports the same line numbers as the whole file.
fn document_text(text: &str, document: &YamlDocument) -> String {
    let start = text.get(..document.root_line_start_byte(text)).map_or(0, str::len);
    let end = document.text_end_byte.clamp(start, text.len());
    let body = text.get(start..end).unwrap_or("");
    let lines_before = document.root.position.line.saturating_sub(1);
    let mut padded = String::with_capacity(lines_before + body.len());
    padded.extend(std::iter::repeat_n('\n', lines_before));
    padded.push_str(body);
    padded
}

impl YamlDocument {
    /// The byte offset of the start of the line where the document's content begins. Starting at
    /// a line start keeps columns unchanged; the `---` marker that may share the line is harmless.
    fn root_line_start_byte(&self, text: &str) -> usize {
        let content_start = self.text_start_byte.min(text.len());
        let mut line_start = 0usize;
        let mut line = 1usize;
        for (offset, byte) in text.bytes().enumerate() {
            if line >= self.root.position.line {
                break;
            }
            if byte == b'\n' {
                line += 1;
                line_start = offset + 1;
            }
        }
        line_start.max(text.get(..content_start).map_or(0, |s| s.rfind('\n').map_or(0, |i| i + 1)))
    }
}

fn time_hint(path: &str) -> &'static str {
    let key = path.rsplit(['.', ']']).next().unwrap_or(path);
    if key.ends_with("Time") || key.ends_with("Timestamp") {
        " (times in the simulation are virtual)"
    } else {
        ""
    }
}

/// Loads every object of a multi-document manifest file.
///
/// `file_label` names the file in messages (`web.yaml:12:7: spec.replicas: ...`). Empty documents
/// are skipped. Fields the model does not simulate become warnings; everything else that is wrong
/// (YAML syntax, a missing or unknown kind, a wrong type, a bad quantity, a failed validation)
/// is an error, and all such errors of the file are returned together.
pub fn load_manifests(file_label: &str, text: &str) -> Result<LoadedManifests, ManifestError> {
    load_manifests_with(file_label, text, &[])
}

/// [`load_manifests`], also accepting objects of the given custom kinds (matched by `kind` and
/// `apiVersion`). A kind that is neither built in nor registered stays an error.
pub fn load_manifests_with(
    file_label: &str,
    text: &str,
    custom_kinds: &[CustomKind],
) -> Result<LoadedManifests, ManifestError> {
    let at_start = |message: String| ManifestError {
        diagnostics: vec![ManifestDiagnostic {
            location: SourceLocation { file: file_label.to_string(), line: 1, column: 1 },
            path: None,
            message,
        }],
    };
    if text.len() > MANIFEST_SIZE_MAX_BYTES {
        return Err(at_start(format!("file of {} bytes exceeds the limit of {MANIFEST_SIZE_MAX_BYTES}", text.len())));
    }
    let documents =
        parse_documents(file_label, text).map_err(|diagnostic| ManifestError { diagnostics: vec![diagnostic] })?;
    let mut loaded = LoadedManifests::default();
    let mut diagnostics = Vec::new();
    for document in &documents {
        if document.root.is_empty_value() {
            continue;
        }
        let context = DocumentContext { file_label, index: PathIndex::build(&document.root) };
        let kind = match resolve_kind(&context, &document.root, custom_kinds) {
            Ok(kind) => kind,
            Err(diagnostic) => {
                diagnostics.push(diagnostic);
                continue;
            }
        };
        let (object, ignored) = match deserialize_object(kind, &document_text(text, document)) {
            Ok(result) => result,
            Err(error) => {
                diagnostics.push(diagnostic_from_serde(&context, &document.root, &error));
                continue;
            }
        };
        for segments in ignored {
            let path = format_segments(&segments);
            if segments.len() == 1 && (path == "apiVersion" || path == "kind") {
                continue;
            }
            if PathIndex::node_is_empty(&document.root, &segments) {
                continue;
            }
            let position = context
                .index
                .key_position(&path)
                .or_else(|| context.index.value_position(&path))
                .unwrap_or(document.root.position);
            let hint = time_hint(&path);
            loaded.warnings.push(ManifestWarning {
                location: context.location(position),
                message: format!("is not simulated and is ignored{hint}"),
                path,
            });
        }
        if let Err(errors) = object.validate() {
            for error in errors {
                let position = context.index.value_position(&error.path).unwrap_or(document.root.position);
                diagnostics.push(context.diagnostic(
                    position,
                    Some(&error.path),
                    format!("{}: {}", error.kind, error.detail),
                ));
            }
            continue;
        }
        loaded.objects.push(LoadedObject { object, location: context.location(document.root.position) });
    }
    if diagnostics.is_empty() {
        Ok(loaded)
    } else {
        Err(ManifestError { diagnostics })
    }
}

/// Turns a serde-saphyr error into a diagnostic with the field path at its position.
fn diagnostic_from_serde(
    context: &DocumentContext<'_>,
    root: &YamlNode,
    error: &serde_saphyr::Error,
) -> ManifestDiagnostic {
    let message = serde_saphyr::DefaultMessageFormatter.format_message(error).replace('\n', " ");
    let position = error
        .location()
        .filter(|location| location.line() > 0)
        .map(|location| Position {
            line: usize::try_from(location.line()).unwrap_or(usize::MAX),
            column: usize::try_from(location.column().max(1)).unwrap_or(usize::MAX),
        })
        .unwrap_or(root.position);
    let path = context.index.path_at(position).filter(|path| !path.is_empty());
    // Some messages ("invalid i32") do not quote the offending text; the tree has it.
    let found =
        path.and_then(|path| context.index.scalar_at(root, path)).filter(|text| !message.contains(text.as_str()));
    let message = match found {
        Some(text) => format!("{message}: found {text:?}"),
        None => message,
    };
    context.diagnostic(position, path, message)
}
