//! Static satisfiability checks for `arguments` JSON Schemas: contradictions a schema validator
//! accepts but no arguments object can ever satisfy (JSON Schema 2020-12 §6 keywords).

use serde_json::Value;

/// The first contradiction found: (path inside the schema, why).
pub(crate) fn unsatisfiable(schema: &Value) -> Option<(String, String)> {
    // Arguments are always an object, so the root must admit objects.
    if let Some(types) = types_of(schema)
        && !types.iter().any(|t| t == "object")
    {
        return Some((
            String::new(),
            format!("arguments are an object but `type` is {types:?}"),
        ));
    }
    check(schema, "", 0)
}

fn types_of(schema: &Value) -> Option<Vec<String>> {
    match schema.get("type")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

fn num(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn check(schema: &Value, path: &str, depth: usize) -> Option<(String, String)> {
    if depth > 32 {
        return None;
    }
    let at = |why: String| Some((path.to_string(), why));
    let obj = match schema {
        Value::Bool(false) => return at("schema is `false`".into()),
        Value::Object(o) => o,
        _ => return None,
    };
    if let Some(types) = types_of(schema)
        && types.is_empty()
    {
        return at("`type` is an empty list".into());
    }
    if let Some(Value::Array(values)) = obj.get("enum") {
        if values.is_empty() {
            return at("`enum` is empty".into());
        }
        if let Some(types) = types_of(schema)
            && !values
                .iter()
                .any(|v| types.iter().any(|t| type_matches(t, v)))
        {
            return at(format!("no `enum` value has type {types:?}"));
        }
    }
    if let (Some(c), Some(Value::Array(values))) = (obj.get("const"), obj.get("enum"))
        && !values.contains(c)
    {
        return at("`const` is not among the `enum` values".into());
    }
    for (lo, hi) in [
        ("minLength", "maxLength"),
        ("minimum", "maximum"),
        ("minItems", "maxItems"),
        ("minProperties", "maxProperties"),
    ] {
        if let (Some(a), Some(b)) = (num(schema, lo), num(schema, hi))
            && a > b
        {
            return at(format!("`{lo}` {a} > `{hi}` {b}"));
        }
    }
    for (lo, hi) in [
        ("exclusiveMinimum", "maximum"),
        ("minimum", "exclusiveMaximum"),
        ("exclusiveMinimum", "exclusiveMaximum"),
    ] {
        if let (Some(a), Some(b)) = (num(schema, lo), num(schema, hi))
            && a >= b
        {
            return at(format!("`{lo}` {a} leaves nothing below `{hi}` {b}"));
        }
    }
    let props = obj.get("properties").and_then(Value::as_object);
    let closed = obj.get("additionalProperties") == Some(&Value::Bool(false))
        && obj.get("patternProperties").is_none();
    if let Some(Value::Array(required)) = obj.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            match props.and_then(|p| p.get(name)) {
                Some(sub) => {
                    let sub_path = format!("{path}.properties.{name}");
                    if let Some(found) = check(sub, &sub_path, depth + 1) {
                        return Some(found);
                    }
                }
                None if closed => {
                    return at(format!(
                        "`{name}` is required but `additionalProperties: false` forbids it"
                    ));
                }
                None => {}
            }
        }
    }
    if let Some(min) = num(schema, "minItems")
        && min > 0.0
        && let Some(items) = obj.get("items")
        && let Some(found) = check(items, &format!("{path}.items"), depth + 1)
    {
        return Some(found);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn satisfiable_schemas_pass() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}, "required": ["a"]});
        assert_eq!(unsatisfiable(&s), None);
    }

    #[test]
    fn contradictions_are_found_with_their_path() {
        let cases = [
            json!({"type": "string"}),
            json!({"properties": {"a": {"minLength": 5, "maxLength": 2}}, "required": ["a"]}),
            json!({"properties": {"a": {"enum": []}}, "required": ["a"]}),
            json!({"properties": {"a": {"type": "string", "enum": [1, 2]}}, "required": ["a"]}),
            json!({"properties": {}, "required": ["b"], "additionalProperties": false}),
            json!({"properties": {"n": {"minimum": 10, "maximum": 1}}, "required": ["n"]}),
            json!({"properties": {"n": {"exclusiveMinimum": 1, "exclusiveMaximum": 1}}, "required": ["n"]}),
            json!({"properties": {"n": false}, "required": ["n"]}),
        ];
        for c in cases {
            assert!(unsatisfiable(&c).is_some(), "{c}");
        }
        let (path, _) = unsatisfiable(&cases_path()).expect("contradiction");
        assert_eq!(path, ".properties.a");
    }

    fn cases_path() -> Value {
        json!({"properties": {"a": {"minLength": 5, "maxLength": 2}}, "required": ["a"]})
    }
}
