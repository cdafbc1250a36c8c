//! The schema: its three roots, its limits, and its SDL.
//!
//! Limits: complexity (async-graphql's validation), selection depth and aliases per document
//! (checked here, see [`Shape`]), page sizes (each connection), body size and batches (the HTTP
//! layer refuses batched requests and large bodies).
//!
//! Depth is this module's own count rather than async-graphql's, which cannot leave anything
//! out: the introspection query every client sends (GraphiQL's docs, graphql-codegen, Apollo,
//! graphql-core) nests `ofType` nine levels under `__schema { types { fields { args { type`,
//! past any depth limit that protects real fields. So `__schema` and `__type` subtrees are not
//! counted in the document's depth; they have their own bounds instead, which is what their
//! cost depends on: how many lists of types and fields are nested in one another (each
//! multiplies the answer by up to a few hundred; the standard query nests three), and a depth
//! generous enough for any client's `ofType` chain. Everything they return is in memory.
//!
//! Two instances of the one schema serve requests. HTTP requests run on one **without
//! extensions**: any extension sends every field through async-graphql's extension chain, which
//! costs more than the field itself for small fields. The HTTP handler parses documents through
//! [`ParsedDocuments`] (a UI sends the same few documents with different variables) and checks
//! their aliases and depth itself. Subscriptions run on an instance with the [`DocumentLimits`]
//! extension, since their documents arrive inside the WebSocket protocol.
//!
//! Validation (async-graphql's strict rules) is about a quarter of a small query's cost (the
//! thread benchmark: 7,400–8,300 req/s with it on every request, 10,300–11,600 without). As in
//! the GraphQL specification, validation is a property of the document and the operation: the
//! one strict rule that also looks at variables' values (`ArgumentsOfCorrectType`) repeats what
//! execution does anyway when it coerces each argument (a value of the wrong type is refused
//! there, with BAD_USER_INPUT, before its resolver runs). [`ParsedDocuments`] therefore
//! remembers, per document, the operation names with which it ran without any error on the
//! strict instance; later requests for the same document and operation run on a third instance
//! built with `ValidationMode::Fast`, which still computes and enforces the complexity limit with
//! their own variables (the depth is a property of the document, checked from the cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{
    Positioned, Schema, SchemaBuilder, ServerError, ServerResult, ValidationMode, Variables,
};

use crate::mutation::Mutation;
use crate::query::Query;
use crate::state::{ApiState, Limits};
use crate::subscription::Subscription;

/// The Switchboard schema.
pub type SwitchboardSchema = Schema<Query, Mutation, Subscription>;

fn builder(state: &ApiState) -> SchemaBuilder<Query, Mutation, Subscription> {
    let limits = &state.inner().limits;
    let builder = Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(64)
        .data(state.clone());
    // The HTTP handler refuses introspection with a clear error first (see `http`); this makes
    // sure no path answers it.
    if state.inner().introspection == crate::state::Introspection::Off {
        builder.disable_introspection()
    } else {
        builder
    }
}

/// The schema serving HTTP requests: no extensions; the caller checks aliases and depth (see
/// [`ParsedDocuments::parse`]).
pub fn build(state: ApiState) -> SwitchboardSchema {
    builder(&state).finish()
}

/// The schema serving HTTP requests whose document and operation already passed the strict
/// validation ([`ParsedDocuments::parse`] says so): only the fast rules and the complexity are
/// checked again.
pub fn build_revalidating(state: ApiState) -> SwitchboardSchema {
    builder(&state)
        .validation_mode(ValidationMode::Fast)
        .finish()
}

/// The schema serving subscriptions, with the alias and depth limits as an extension.
pub fn build_for_subscriptions(state: ApiState) -> SwitchboardSchema {
    let limits = DocumentLimits::from(&state.inner().limits);
    builder(&state).extension(limits).finish()
}

/// The schema's SDL, as committed in `crates/switchboard-api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .finish()
        .sdl()
}

/// Most documents [`ParsedDocuments`] keeps; when full it starts afresh (clients send a handful
/// of distinct documents, with variables, so the cache stays warm).
const PARSED_ENTRIES: usize = 512;

/// Longest query text [`ParsedDocuments`] keeps.
const PARSED_MAX_QUERY: usize = 16 * 1024;

/// Most operation names remembered as valid per document; when full the document's list
/// starts afresh.
const VALIDATED_PER_DOCUMENT: usize = 32;

/// A parsed document, how many aliases it has, the shape of each operation, and the operation
/// names it ran with without errors (`None`: the document's only operation).
#[derive(Debug)]
struct Parsed {
    document: Arc<ExecutableDocument>,
    aliases: usize,
    shapes: Vec<(Option<String>, Shape)>,
    valid_for: Vec<Option<String>>,
}

/// Parsed documents by query text, with their alias counts and the operations that passed the
/// strict validation.
#[derive(Debug, Clone, Default)]
pub struct ParsedDocuments(Arc<Mutex<HashMap<String, Parsed>>>);

/// A document ready to execute.
#[derive(Debug)]
pub struct Prepared {
    /// The parsed document.
    pub document: ExecutableDocument,
    /// The operation selects `__schema` or `__type`.
    pub introspects: bool,
    /// The same document and operation passed the strict validation before.
    pub validated: bool,
}

impl ParsedDocuments {
    /// The document of `query`, refused with BAD_USER_INPUT when it has more aliases than the
    /// limits allow or the operation is nested too deep (see [`Shape`]); `None` when it does
    /// not parse (the schema then reports the syntax error itself).
    pub fn parse(
        &self,
        query: &str,
        operation_name: Option<&str>,
        variables: &Variables,
        limits: &Limits,
    ) -> Result<Option<Prepared>, ServerError> {
        let cached = self.0.lock().ok().and_then(|cache| {
            cache.get(query).map(|parsed| {
                let validated = parsed
                    .valid_for
                    .iter()
                    .any(|op| op.as_deref() == operation_name);
                let shape = selected(&parsed.shapes, operation_name);
                (parsed.document.clone(), parsed.aliases, shape, validated)
            })
        });
        let (document, aliases, shape, validated) = match cached {
            Some(found) => found,
            None => {
                let Ok(document) = async_graphql::parser::parse_query(query) else {
                    return Ok(None);
                };
                let aliases = aliases_in(&document);
                let shapes = shapes_of(&document);
                let shape = selected(&shapes, operation_name);
                let document = Arc::new(document);
                if query.len() <= PARSED_MAX_QUERY
                    && let Ok(mut cache) = self.0.lock()
                {
                    if cache.len() >= PARSED_ENTRIES {
                        cache.clear();
                    }
                    cache.insert(
                        query.to_owned(),
                        Parsed {
                            document: document.clone(),
                            aliases,
                            shapes,
                            valid_for: Vec::new(),
                        },
                    );
                }
                (document, aliases, shape, false)
            }
        };
        check_aliases(aliases, limits.max_aliases)?;
        if let Some(shape) = shape {
            shape.check(limits.max_depth)?;
        }
        if validated {
            check_non_null_variables(&document, operation_name, variables)?;
        }
        Ok(Some(Prepared {
            document: ExecutableDocument::clone(&document),
            introspects: shape.is_some_and(|shape| shape.introspection_depth > 0),
            validated,
        }))
    }

    /// Remembers that `query` ran with `operation_name` without any error (so it passed the
    /// strict validation). Call only after such a run on the strict schema.
    pub fn ran_without_errors(&self, query: &str, operation_name: Option<String>) {
        let Ok(mut cache) = self.0.lock() else {
            return;
        };
        let Some(parsed) = cache.get_mut(query) else {
            return;
        };
        if parsed.valid_for.contains(&operation_name) {
            return;
        }
        if parsed.valid_for.len() >= VALIDATED_PER_DOCUMENT {
            parsed.valid_for.clear();
        }
        parsed.valid_for.push(operation_name);
    }
}

/// Refuses documents with more aliased fields than `max_aliases` (aliases let one small request
/// ask for the same expensive field many times, which depth and complexity alone price too
/// low), or with an operation nested deeper than `max_depth` (see [`Shape`]).
#[derive(Debug, Clone, Copy)]
pub struct DocumentLimits {
    /// Most aliased fields in one document.
    pub max_aliases: usize,
    /// Deepest nesting of real (non-introspection) fields.
    pub max_depth: usize,
}

impl From<&Limits> for DocumentLimits {
    fn from(limits: &Limits) -> DocumentLimits {
        DocumentLimits {
            max_aliases: limits.max_aliases,
            max_depth: limits.max_depth,
        }
    }
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check_aliases(aliases_in(&document), self.max_aliases)?;
        // The operation name is not known here: every operation must pass.
        for (_, shape) in shapes_of(&document) {
            shape.check(self.max_depth)?;
        }
        Ok(document)
    }
}

/// Deepest `ofType` chain and other nesting allowed inside `__schema` and `__type`: linear
/// chains are cheap, and clients differ in how many levels they ask for (graphql-js asks for
/// nine `ofType` under five other levels).
pub const MAX_INTROSPECTION_DEPTH: usize = 32;

/// Most lists of the schema's types, fields, arguments and values nested in one another inside
/// `__schema` and `__type` (`__schema { types { fields { args` is three): each level multiplies
/// the answer by up to a few hundred.
pub const MAX_INTROSPECTION_LISTS: usize = 3;

/// The introspection fields that return lists of the schema's parts.
const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "fields",
    "args",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "directives",
];

/// Deeper nesting than this is not followed (the parser's own recursion bound is lower; this
/// only keeps the walk bounded whatever the parser lets through).
const WALK_LIMIT: usize = 512;

/// Most fields one operation may have once its fragment spreads are expanded: fragments
/// spreading other fragments twice double at each level, so a small document can expand to
/// more fields than any server should walk.
pub const MAX_EXPANDED_FIELDS: usize = 100_000;

/// How deep an operation nests, fragments included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Deepest nesting of fields outside `__schema` and `__type` (`{ viewer { name } }` is 2).
    pub depth: usize,
    /// Deepest nesting inside `__schema` or `__type`, counting them.
    pub introspection_depth: usize,
    /// Most introspection lists (`types`, `fields`...) nested in one another.
    pub introspection_lists: usize,
    /// Fields walked, fragments expanded in place; the walk stops past
    /// [`MAX_EXPANDED_FIELDS`].
    pub expanded_fields: usize,
}

impl Shape {
    /// Refuses the shape with BAD_USER_INPUT when it passes `max_depth` or the introspection
    /// bounds.
    pub fn check(&self, max_depth: usize) -> ServerResult<()> {
        if self.expanded_fields > MAX_EXPANDED_FIELDS {
            return Err(bad_user_input(format!(
                "The query has more than {MAX_EXPANDED_FIELDS} fields once its fragments are \
                 expanded."
            )));
        }
        if self.depth > max_depth {
            return Err(bad_user_input(format!(
                "The query is nested too deep: {} levels of fields, at most {max_depth} allowed.",
                self.depth
            )));
        }
        if self.introspection_depth > MAX_INTROSPECTION_DEPTH
            || self.introspection_lists > MAX_INTROSPECTION_LISTS
        {
            return Err(bad_user_input(format!(
                "The introspection query is nested too deep: at most {MAX_INTROSPECTION_DEPTH} \
                 levels, and at most {MAX_INTROSPECTION_LISTS} lists of types, fields, \
                 arguments or values in one another."
            )));
        }
        Ok(())
    }
}

/// The shape of the operation `operation_name` selects (`None`: the only one). `None` when it
/// selects none: execution reports that.
fn selected(shapes: &[(Option<String>, Shape)], operation_name: Option<&str>) -> Option<Shape> {
    match operation_name {
        Some(wanted) => shapes
            .iter()
            .find(|(name, _)| name.as_deref() == Some(wanted))
            .map(|(_, shape)| *shape),
        None if shapes.len() == 1 => shapes.first().map(|(_, shape)| *shape),
        None => None,
    }
}

/// The shape of each operation of `document`, by name.
fn shapes_of(document: &ExecutableDocument) -> Vec<(Option<String>, Shape)> {
    document
        .operations
        .iter()
        .map(|(name, operation)| {
            (
                name.map(|n| n.to_string()),
                shape_of(document, &operation.node),
            )
        })
        .collect()
}

fn shape_of(document: &ExecutableDocument, operation: &OperationDefinition) -> Shape {
    let mut walk = Walk {
        document,
        shape: Shape::default(),
        fragments: Vec::new(),
    };
    walk.selection_set(&operation.selection_set, Place::Real { depth: 0 });
    walk.shape
}

/// Where a selection set is: among real fields, or inside `__schema`/`__type`.
#[derive(Debug, Clone, Copy)]
enum Place {
    Real { depth: usize },
    Introspection { depth: usize, lists: usize },
}

/// A walk through an operation's fields, fragment spreads followed in place.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    shape: Shape,
    /// The fragments being walked, innermost last: a fragment spread inside itself (refused by
    /// validation later) is not followed again.
    fragments: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    fn selection_set(&mut self, set: &'a Positioned<SelectionSet>, place: Place) {
        let level = match place {
            Place::Real { depth } => depth,
            Place::Introspection { depth, .. } => depth,
        };
        if level >= WALK_LIMIT {
            return;
        }
        for item in &set.node.items {
            if self.shape.expanded_fields > MAX_EXPANDED_FIELDS {
                return;
            }
            match &item.node {
                Selection::Field(field) => {
                    self.shape.expanded_fields += 1;
                    let name = field.node.name.node.as_str();
                    let inner = match place {
                        Place::Real { depth } if name == "__schema" || name == "__type" => {
                            // The real depth counts the field itself, like any leaf.
                            self.shape.depth = self.shape.depth.max(depth + 1);
                            Place::Introspection { depth: 1, lists: 0 }
                        }
                        Place::Real { depth } => {
                            self.shape.depth = self.shape.depth.max(depth + 1);
                            Place::Real { depth: depth + 1 }
                        }
                        Place::Introspection { depth, lists } => {
                            let lists = lists + usize::from(INTROSPECTION_LISTS.contains(&name));
                            Place::Introspection {
                                depth: depth + 1,
                                lists,
                            }
                        }
                    };
                    if let Place::Introspection { depth, lists } = inner {
                        let shape = &mut self.shape;
                        shape.introspection_depth = shape.introspection_depth.max(depth);
                        shape.introspection_lists = shape.introspection_lists.max(lists);
                    }
                    self.selection_set(&field.node.selection_set, inner);
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set, place);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if self.fragments.contains(&name) {
                        continue;
                    }
                    let Some(fragment) =
                        self.document.fragments.get(&spread.node.fragment_name.node)
                    else {
                        continue;
                    };
                    self.fragments.push(name);
                    self.selection_set(&fragment.node.selection_set, place);
                    self.fragments.pop();
                }
            }
        }
    }
}

fn bad_user_input(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "BAD_USER_INPUT");
    error.extensions = Some(ext);
    error
}

/// The part of variable coercion the fast validation leaves out: a variable of a non-null type
/// with no default must be given, and not as null (a value of the wrong type is refused when
/// its argument is coerced).
fn check_non_null_variables(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> ServerResult<()> {
    for (name, operation) in document.operations.iter() {
        if operation_name.is_some_and(|wanted| name.is_none_or(|n| n.as_str() != wanted)) {
            continue;
        }
        for definition in &operation.node.variable_definitions {
            let definition = &definition.node;
            if definition.var_type.node.nullable || definition.default_value.is_some() {
                continue;
            }
            let given = variables.get(&definition.name.node);
            if given.is_none_or(|value| *value == async_graphql::Value::Null) {
                let mut error = ServerError::new(
                    format!(
                        "Variable ${} of type {} must be given a value, not null.",
                        definition.name.node, definition.var_type.node
                    ),
                    Some(definition.name.pos),
                );
                let mut ext = async_graphql::ErrorExtensionValues::default();
                ext.set("code", "BAD_USER_INPUT");
                error.extensions = Some(ext);
                return Err(error);
            }
        }
    }
    Ok(())
}

fn check_aliases(aliases: usize, max_aliases: usize) -> ServerResult<()> {
    if aliases <= max_aliases {
        return Ok(());
    }
    let mut error = ServerError::new(
        format!("the document has {aliases} aliases; at most {max_aliases} are allowed"),
        None,
    );
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "BAD_USER_INPUT");
    error.extensions = Some(ext);
    Err(error)
}

fn aliases_in(document: &ExecutableDocument) -> usize {
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, operation)| count_aliases(&operation.node.selection_set))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|fragment| count_aliases(&fragment.node.selection_set))
        .sum();
    operations + fragments
}

fn count_aliases(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}
