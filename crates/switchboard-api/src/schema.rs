//! The schema: its three roots, its limits, and its SDL.
//!
//! Limits: selection depth and complexity (async-graphql's validation), aliases per document,
//! page sizes (each connection), body size and batches (the HTTP layer refuses batched requests
//! and large bodies).
//!
//! Two instances of the one schema serve requests. HTTP requests run on one **without
//! extensions**: any extension sends every field through async-graphql's extension chain, which
//! costs more than the field itself for small fields. The HTTP handler parses documents through
//! [`ParsedDocuments`] (a UI sends the same few documents with different variables) and checks
//! their aliases itself. Subscriptions run on an instance with the [`AliasLimit`] extension,
//! since their documents arrive inside the WebSocket protocol.
//!
//! Validation (async-graphql's strict rules) is about a quarter of a small query's cost (the
//! thread benchmark: 7,400–8,300 req/s with it on every request, 10,300–11,600 without). As in
//! the GraphQL specification, validation is a property of the document and the operation: the
//! one strict rule that also looks at variables' values (`ArgumentsOfCorrectType`) repeats what
//! execution does anyway when it coerces each argument (a value of the wrong type is refused
//! there, with BAD_USER_INPUT, before its resolver runs). [`ParsedDocuments`] therefore
//! remembers, per document, the operation names with which it ran without any error on the
//! strict instance; later requests for the same document and operation run on a third instance
//! built with `ValidationMode::Fast`, which still computes and enforces the depth and
//! complexity limits with their own variables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    Positioned, Schema, SchemaBuilder, ServerError, ServerResult, ValidationMode, Variables,
};

use crate::mutation::Mutation;
use crate::query::Query;
use crate::state::ApiState;
use crate::subscription::Subscription;

/// The Switchboard schema.
pub type SwitchboardSchema = Schema<Query, Mutation, Subscription>;

fn builder(state: &ApiState) -> SchemaBuilder<Query, Mutation, Subscription> {
    let limits = &state.inner().limits;
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(64)
        .data(state.clone())
}

/// The schema serving HTTP requests: no extensions; the caller checks aliases (see
/// [`ParsedDocuments::parse`]).
pub fn build(state: ApiState) -> SwitchboardSchema {
    builder(&state).finish()
}

/// The schema serving HTTP requests whose document and operation already passed the strict
/// validation ([`ParsedDocuments::parse`] says so): only the fast rules, the
/// depth and the complexity are checked again.
pub fn build_revalidating(state: ApiState) -> SwitchboardSchema {
    builder(&state)
        .validation_mode(ValidationMode::Fast)
        .finish()
}

/// The schema serving subscriptions, with the alias limit as an extension.
pub fn build_for_subscriptions(state: ApiState) -> SwitchboardSchema {
    let max_aliases = state.inner().limits.max_aliases;
    builder(&state).extension(AliasLimit(max_aliases)).finish()
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

/// A parsed document, how many aliases it has, and the operation names it ran with without
/// errors (`None`: the document's only operation).
#[derive(Debug)]
struct Parsed {
    document: Arc<ExecutableDocument>,
    aliases: usize,
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
    /// The same document and operation passed the strict validation before.
    pub validated: bool,
}

impl ParsedDocuments {
    /// The document of `query`, refused with BAD_USER_INPUT when it has more than
    /// `max_aliases` aliases; `None` when it does not parse (the schema then reports the
    /// syntax error itself).
    pub fn parse(
        &self,
        query: &str,
        operation_name: Option<&str>,
        variables: &Variables,
        max_aliases: usize,
    ) -> Result<Option<Prepared>, ServerError> {
        let cached = self.0.lock().ok().and_then(|cache| {
            cache.get(query).map(|parsed| {
                let validated = parsed
                    .valid_for
                    .iter()
                    .any(|op| op.as_deref() == operation_name);
                (parsed.document.clone(), parsed.aliases, validated)
            })
        });
        let (document, aliases, validated) = match cached {
            Some(found) => found,
            None => {
                let Ok(document) = async_graphql::parser::parse_query(query) else {
                    return Ok(None);
                };
                let aliases = aliases_in(&document);
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
                            valid_for: Vec::new(),
                        },
                    );
                }
                (document, aliases, false)
            }
        };
        check_aliases(aliases, max_aliases)?;
        if validated {
            check_non_null_variables(&document, operation_name, variables)?;
        }
        Ok(Some(Prepared {
            document: ExecutableDocument::clone(&document),
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

/// Refuses documents with more than `.0` aliased fields: aliases let one small request ask for
/// the same expensive field many times, which depth and complexity alone price too low.
#[derive(Debug, Clone, Copy)]
pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for AliasLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check_aliases(aliases_in(&document), self.0)?;
        Ok(document)
    }
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
