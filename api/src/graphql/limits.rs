//! Extensions that async-graphql lacks: an alias cap, and error codes on its own built-in errors.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

/// Refuses documents with more than N aliased fields (alias-overloading attacks).
pub struct AliasLimit(pub usize);

struct AliasLimitExt(usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExt(self.0))
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node),
            Selection::InlineFragment(i) => count_aliases(&i.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn with_code(mut err: ServerError, code: &str) -> ServerError {
    let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
    if !has_code {
        err.extensions.get_or_insert_with(Default::default).set("code", code);
    }
    err
}

#[async_trait::async_trait]
impl Extension for AliasLimitExt {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await.map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED"))?;
        let aliases: usize =
            doc.operations.iter().map(|(_, op)| count_aliases(&op.node.selection_set.node)).sum::<usize>()
                + doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum::<usize>();
        if aliases > self.0 {
            return Err(with_code(
                ServerError::new(format!("too many aliases: {aliases} (limit {})", self.0), None),
                "GRAPHQL_VALIDATION_FAILED",
            ));
        }
        Ok(doc)
    }
}

/// Adds `GRAPHQL_VALIDATION_FAILED` to validation and limit errors, which async-graphql leaves bare.
pub struct ErrorCodes;

struct ErrorCodesExt;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExt)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExt {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx)
            .await
            .map_err(|errs| errs.into_iter().map(|e| with_code(e, "GRAPHQL_VALIDATION_FAILED")).collect())
    }
}
