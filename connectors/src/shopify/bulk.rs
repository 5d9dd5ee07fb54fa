//! Reading a bulk operation's result: JSONL, one object per line, nested connections flattened
//! with each child carrying `__parentId` and following its parent. [`Groups`] streams it as one
//! top-level object at a time with all its descendants, so memory stays bounded by the largest
//! object (a product and its variants), not the file. A bad line is a per-record problem with its
//! line number; it does not stop the rest.

use std::collections::HashSet;
use std::io::BufRead;

use serde_json::Value;

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The object's global id (`gid://shopify/ProductVariant/…`); empty for objects without one.
    pub id: String,
    /// The `__parentId`, for children.
    pub parent: Option<String>,
    /// The object without `__parentId`.
    pub value: Value,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A top-level object and every descendant that followed it, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub root: Record,
    pub descendants: Vec<Record>,
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error("line {line}: cannot read the file: {message}")]
    Io { line: usize, message: String },
    #[error("line {line}: not a JSON object: {message}")]
    NotJson { line: usize, message: String },
    #[error("line {line}: its parent {parent} is not the object before it or one of its descendants")]
    Orphan { line: usize, parent: String },
}

/// Groups of a bulk result read from `reader`, one at a time.
pub struct Groups<R> {
    reader: R,
    line: usize,
    /// The group being gathered, and the ids in it (a child's parent must be among them).
    current: Option<(Group, HashSet<String>)>,
    done: bool,
}

impl<R: BufRead> Groups<R> {
    pub fn new(reader: R) -> Self {
        Groups { reader, line: 0, current: None, done: false }
    }

    /// The next line as a record; `None` at the end. Blank lines are skipped.
    fn next_record(&mut self) -> Option<Result<Record, BulkError>> {
        let mut text = String::new();
        loop {
            text.clear();
            self.line += 1;
            match self.reader.read_line(&mut text) {
                Ok(0) => return None,
                Ok(_) if text.trim().is_empty() => continue,
                Ok(_) => break,
                Err(e) => return Some(Err(BulkError::Io { line: self.line, message: e.to_string() })),
            }
        }
        let line = self.line;
        let mut value: Value = match serde_json::from_str(text.trim_end()) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Some(Err(BulkError::NotJson { line, message: "not an object".into() })),
            Err(e) => return Some(Err(BulkError::NotJson { line, message: e.to_string() })),
        };
        let object = value.as_object_mut()?;
        let parent = object.remove("__parentId").and_then(|p| p.as_str().map(str::to_owned));
        let id = object.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        Some(Ok(Record { id, parent, value, line }))
    }
}

impl<R: BufRead> Iterator for Groups<R> {
    type Item = Result<Group, BulkError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some(record) = self.next_record() else {
                self.done = true;
                break;
            };
            let record = match record {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            match &record.parent {
                None => {
                    let ids = HashSet::from([record.id.clone()]);
                    let fresh = (Group { root: record, descendants: Vec::new() }, ids);
                    if let Some((finished, _)) = self.current.replace(fresh) {
                        return Some(Ok(finished));
                    }
                }
                Some(parent) => match &mut self.current {
                    Some((group, ids)) if ids.contains(parent) => {
                        if !record.id.is_empty() {
                            ids.insert(record.id.clone());
                        }
                        group.descendants.push(record);
                    }
                    _ => return Some(Err(BulkError::Orphan { line: record.line, parent: parent.clone() })),
                },
            }
        }
        self.current.take().map(|(group, _)| Ok(group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two products, the first with two variants and one of them with a stock level, the way a
    /// bulk query of products → variants → inventory levels comes back (ids escaped as Shopify
    /// writes them).
    const FILE: &str = concat!(
        r#"{"id":"gid:\/\/shopify\/Product\/11","title":"Tee","updatedAt":"2026-02-01T09:00:00Z"}"#,
        "\n",
        r#"{"id":"gid:\/\/shopify\/ProductVariant\/21","sku":"TEE-S","__parentId":"gid:\/\/shopify\/Product\/11"}"#,
        "\n",
        r#"{"id":"gid:\/\/shopify\/InventoryLevel\/31?inventory_item_id=41","quantities":[{"name":"available","quantity":4}],"__parentId":"gid:\/\/shopify\/ProductVariant\/21"}"#,
        "\n",
        r#"{"id":"gid:\/\/shopify\/ProductVariant\/22","sku":"TEE-M","__parentId":"gid:\/\/shopify\/Product\/11"}"#,
        "\n\n",
        r#"{"id":"gid:\/\/shopify\/Product\/12","title":"Cap"}"#,
        "\n",
    );

    #[test]
    fn children_are_gathered_under_their_top_level_object() {
        let groups: Vec<Group> = Groups::new(FILE.as_bytes()).collect::<Result<_, _>>().expect("valid");
        assert_eq!(groups.len(), 2);
        let tee = &groups[0];
        assert_eq!(tee.root.id, "gid://shopify/Product/11");
        assert_eq!(tee.root.value["title"], "Tee");
        let ids: Vec<&str> = tee.descendants.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "gid://shopify/ProductVariant/21",
                "gid://shopify/InventoryLevel/31?inventory_item_id=41",
                "gid://shopify/ProductVariant/22"
            ]
        );
        assert_eq!(tee.descendants[1].parent.as_deref(), Some("gid://shopify/ProductVariant/21"));
        assert!(tee.descendants[0].value.get("__parentId").is_none());
        assert_eq!((groups[1].root.value["title"].as_str(), groups[1].descendants.len()), (Some("Cap"), 0));
        assert_eq!(groups[1].root.line, 6, "blank lines count");
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number_and_the_rest_still_reads() {
        let file = format!(
            "{}\nnot json\n{}\n{}\n",
            r#"{"id":"gid://shopify/Product/1"}"#,
            r#"{"id":"gid://shopify/ProductVariant/9","__parentId":"gid://shopify/Product/404"}"#,
            r#"{"id":"gid://shopify/Product/2"}"#
        );
        let out: Vec<Result<Group, BulkError>> = Groups::new(file.as_bytes()).collect();
        assert!(matches!(out[0], Err(BulkError::NotJson { line: 2, .. })), "{out:?}");
        assert_eq!(out[1], Err(BulkError::Orphan { line: 3, parent: "gid://shopify/Product/404".into() }));
        let roots: Vec<String> = out.iter().filter_map(|g| g.as_ref().ok()).map(|g| g.root.id.clone()).collect();
        assert_eq!(roots, ["gid://shopify/Product/1", "gid://shopify/Product/2"]);
    }

    #[test]
    fn a_large_file_streams_group_by_group() {
        // 10,000 products with 3 variants each, streamed from a reader that makes the lines.
        struct Lines(usize);
        impl std::io::Read for Lines {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 >= 40_000 {
                    return Ok(0);
                }
                let (p, k) = (self.0 / 4, self.0 % 4);
                let line = if k == 0 {
                    format!("{{\"id\":\"gid://shopify/Product/{p}\"}}\n")
                } else {
                    format!(
                        "{{\"id\":\"gid://shopify/ProductVariant/{p}{k}\",\"__parentId\":\"gid://shopify/Product/{p}\"}}\n"
                    )
                };
                self.0 += 1;
                buf[..line.len()].copy_from_slice(line.as_bytes());
                Ok(line.len())
            }
        }
        let mut groups = Groups::new(std::io::BufReader::with_capacity(256, Lines(0)));
        let mut count = 0;
        for g in groups.by_ref() {
            let g = g.expect("valid");
            assert_eq!(g.descendants.len(), 3);
            count += 1;
        }
        assert_eq!(count, 10_000);
        assert!(groups.current.is_none());
    }
}
