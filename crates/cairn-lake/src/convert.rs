//! From CloudTrail records to Arrow: the columns of CloudTrail Lake's event schema (all lower
//! case, as the spec lists them), plus the verbatim record and two columns of Cairn's own.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, ListArray, ListBuilder, MapBuilder, RecordBatch,
    StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{Field, Fields, Schema, SchemaRef};
use serde_json::Value;

use crate::LakeError;

/// The column with the event time (a timestamp in milliseconds, UTC, without zone).
pub const EVENT_TIME: &str = "eventtime";
/// When Cairn stored the event (a Cairn column; CloudTrail Lake calls its own
/// `metadata.ingestiontime`).
pub const INGESTION_TIME: &str = "ingestiontime";
/// The event data stores other than the account's default store that keep the event
/// (a Cairn column, hidden from SQL).
pub const STORES: &str = "cairn_stores";

/// One column of a struct (or a leaf) read from a JSON member.
enum Node {
    Leaf {
        name: String,
        key: &'static str,
        b: StringBuilder,
    },
    Struct(StructNode),
}

struct StructNode {
    name: String,
    key: &'static str,
    children: Vec<Node>,
    valid: Vec<bool>,
}

fn leaf(key: &'static str) -> Node {
    Node::Leaf {
        name: key.to_ascii_lowercase(),
        key,
        b: StringBuilder::new(),
    }
}

fn strukt(key: &'static str, children: Vec<Node>) -> StructNode {
    StructNode {
        name: key.to_ascii_lowercase(),
        key,
        children,
        valid: Vec::new(),
    }
}

/// A JSON value as the text SQL sees: strings as they are, anything else as JSON.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Node {
    fn push(&mut self, v: Option<&Value>) {
        match self {
            Node::Leaf { b, .. } => match v.and_then(text) {
                Some(s) => b.append_value(s),
                None => b.append_null(),
            },
            Node::Struct(s) => s.push(v),
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Node::Leaf { key, .. } => key,
            Node::Struct(s) => s.key,
        }
    }

    fn finish(&mut self) -> (Field, ArrayRef) {
        match self {
            Node::Leaf { name, b, .. } => {
                let a: ArrayRef = Arc::new(b.finish());
                (Field::new(name.as_str(), a.data_type().clone(), true), a)
            }
            Node::Struct(s) => {
                let a: ArrayRef = Arc::new(s.finish());
                (Field::new(s.name.as_str(), a.data_type().clone(), true), a)
            }
        }
    }
}

impl StructNode {
    fn push(&mut self, v: Option<&Value>) {
        match v {
            Some(Value::Object(o)) => {
                self.valid.push(true);
                for c in &mut self.children {
                    c.push(o.get(c.key()));
                }
            }
            _ => {
                self.valid.push(false);
                for c in &mut self.children {
                    c.push(None);
                }
            }
        }
    }

    fn finish(&mut self) -> StructArray {
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) =
            self.children.iter_mut().map(Node::finish).unzip();
        let valid = std::mem::take(&mut self.valid);
        let nulls = (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid));
        StructArray::new(Fields::from(fields), arrays, nulls)
    }
}

fn user_identity() -> StructNode {
    strukt(
        "userIdentity",
        vec![
            leaf("type"),
            leaf("principalId"),
            leaf("arn"),
            leaf("accountId"),
            leaf("accessKeyId"),
            leaf("userName"),
            leaf("invokedBy"),
            leaf("identityProvider"),
            leaf("credentialId"),
            Node::Struct(strukt(
                "sessionContext",
                vec![
                    Node::Struct(strukt(
                        "attributes",
                        vec![leaf("creationDate"), leaf("mfaAuthenticated")],
                    )),
                    Node::Struct(strukt(
                        "sessionIssuer",
                        vec![
                            leaf("type"),
                            leaf("principalId"),
                            leaf("arn"),
                            leaf("accountId"),
                            leaf("userName"),
                        ],
                    )),
                    leaf("sourceIdentity"),
                    leaf("ec2RoleDelivery"),
                ],
            )),
            Node::Struct(strukt(
                "onBehalfOf",
                vec![leaf("userId"), leaf("identityStoreArn")],
            )),
        ],
    )
}

/// The plain string columns, in schema order, by record member.
const STRINGS_A: [&str; 4] = ["eventSource", "eventName", "awsRegion", "sourceIPAddress"];
const STRINGS_B: [&str; 4] = ["userAgent", "errorCode", "errorMessage", "requestID"];
const MAPS_A: [&str; 3] = [
    "requestParameters",
    "responseElements",
    "additionalEventData",
];
const STRINGS_C: [&str; 1] = ["eventID"];
const STRINGS_D: [&str; 2] = ["eventType", "apiVersion"];
const STRINGS_E: [&str; 5] = [
    "recipientAccountId",
    "sharedEventID",
    "annotation",
    "vpcEndpointId",
    "eventCategory",
];
const MAPS_B: [&str; 4] = [
    "serviceEventDetails",
    "addendum",
    "edgeDeviceDetails",
    "insightDetails",
];

type MapB = MapBuilder<StringBuilder, StringBuilder>;

/// Builds record batches of the lake schema, one record at a time.
pub struct Converter {
    version: StringBuilder,
    identity: StructNode,
    time: TimestampMillisecondBuilder,
    strings_a: Vec<StringBuilder>,
    strings_b: Vec<StringBuilder>,
    maps_a: Vec<MapB>,
    strings_c: Vec<StringBuilder>,
    read_only: BooleanBuilder,
    resources: StructNode,
    resource_offsets: Vec<i32>,
    resource_valid: Vec<bool>,
    strings_d: Vec<StringBuilder>,
    management: BooleanBuilder,
    strings_e: Vec<StringBuilder>,
    maps_b: Vec<MapB>,
    tls: StructNode,
    console: StringBuilder,
    json: StringBuilder,
    ingestion: TimestampMillisecondBuilder,
    stores: ListBuilder<StringBuilder>,
    rows: usize,
}

fn strings(n: usize) -> Vec<StringBuilder> {
    (0..n).map(|_| StringBuilder::new()).collect()
}

fn maps(n: usize) -> Vec<MapB> {
    (0..n)
        .map(|_| MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()))
        .collect()
}

fn push_str(b: &mut StringBuilder, v: Option<&Value>) {
    match v.and_then(text) {
        Some(s) => b.append_value(s),
        None => b.append_null(),
    }
}

fn push_bool(b: &mut BooleanBuilder, v: Option<&Value>) {
    match v {
        Some(Value::Bool(x)) => b.append_value(*x),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => b.append_value(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => b.append_value(false),
        _ => b.append_null(),
    }
}

fn push_map(b: &mut MapB, v: Option<&Value>) -> Result<(), LakeError> {
    match v {
        Some(Value::Object(o)) => {
            for (k, v) in o {
                b.keys().append_value(k);
                match text(v) {
                    Some(s) => b.values().append_value(s),
                    None => b.values().append_null(),
                }
            }
            b.append(true)
        }
        _ => b.append(false),
    }
    .map_err(|e| LakeError::Convert(e.to_string()))
}

impl Default for Converter {
    fn default() -> Self {
        Converter::new()
    }
}

impl Converter {
    pub fn new() -> Converter {
        Converter {
            version: StringBuilder::new(),
            identity: user_identity(),
            time: TimestampMillisecondBuilder::new(),
            strings_a: strings(STRINGS_A.len()),
            strings_b: strings(STRINGS_B.len()),
            maps_a: maps(MAPS_A.len()),
            strings_c: strings(STRINGS_C.len()),
            read_only: BooleanBuilder::new(),
            resources: strukt(
                "resources",
                vec![
                    leaf("accountId"),
                    leaf("type"),
                    leaf("ARN"),
                    leaf("ARNPrefix"),
                ],
            ),
            resource_offsets: vec![0],
            resource_valid: Vec::new(),
            strings_d: strings(STRINGS_D.len()),
            management: BooleanBuilder::new(),
            strings_e: strings(STRINGS_E.len()),
            maps_b: maps(MAPS_B.len()),
            tls: strukt(
                "tlsDetails",
                vec![
                    leaf("tlsVersion"),
                    leaf("cipherSuite"),
                    leaf("clientProvidedHostHeader"),
                ],
            ),
            console: StringBuilder::new(),
            json: StringBuilder::new(),
            ingestion: TimestampMillisecondBuilder::new(),
            stores: ListBuilder::new(StringBuilder::new()),
            rows: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds one record (its verbatim JSON), stored at `stored_ms`, kept by the non-default
    /// event data stores `stores`. A record that is not a JSON object with a valid
    /// `eventTime` is refused (the store only holds normalised records, so this is damage).
    pub fn push(
        &mut self,
        record: &[u8],
        stored_ms: i64,
        stores: &[&str],
    ) -> Result<(), LakeError> {
        let text_record = std::str::from_utf8(record)
            .map_err(|_| LakeError::Convert("a record is not UTF-8".into()))?;
        let v: Value = serde_json::from_str(text_record)
            .map_err(|e| LakeError::Convert(format!("a record is not JSON: {e}")))?;
        let Value::Object(o) = &v else {
            return Err(LakeError::Convert("a record is not a JSON object".into()));
        };
        let time = o
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(cairn_event::parse_event_time)
            .ok_or_else(|| LakeError::Convert("a record has no valid eventTime".into()))?;
        push_str(&mut self.version, o.get("eventVersion"));
        self.identity.push(o.get("userIdentity"));
        self.time.append_value(time);
        for (b, k) in self.strings_a.iter_mut().zip(STRINGS_A) {
            push_str(b, o.get(k));
        }
        for (b, k) in self.strings_b.iter_mut().zip(STRINGS_B) {
            push_str(b, o.get(k));
        }
        for (b, k) in self.maps_a.iter_mut().zip(MAPS_A) {
            push_map(b, o.get(k))?;
        }
        for (b, k) in self.strings_c.iter_mut().zip(STRINGS_C) {
            push_str(b, o.get(k));
        }
        push_bool(&mut self.read_only, o.get("readOnly"));
        match o.get("resources") {
            Some(Value::Array(items)) => {
                for item in items {
                    self.resources.push(Some(item));
                }
                self.resource_valid.push(true);
            }
            _ => self.resource_valid.push(false),
        }
        let n = i32::try_from(self.resources.valid.len())
            .map_err(|_| LakeError::Convert("too many resources in one batch".into()))?;
        self.resource_offsets.push(n);
        for (b, k) in self.strings_d.iter_mut().zip(STRINGS_D) {
            push_str(b, o.get(k));
        }
        push_bool(&mut self.management, o.get("managementEvent"));
        for (b, k) in self.strings_e.iter_mut().zip(STRINGS_E) {
            push_str(b, o.get(k));
        }
        for (b, k) in self.maps_b.iter_mut().zip(MAPS_B) {
            push_map(b, o.get(k))?;
        }
        self.tls.push(o.get("tlsDetails"));
        push_str(&mut self.console, o.get("sessionCredentialFromConsole"));
        self.json.append_value(text_record);
        self.ingestion.append_value(stored_ms);
        for s in stores {
            self.stores.values().append_value(s);
        }
        self.stores.append(true);
        self.rows += 1;
        Ok(())
    }

    /// The batch of everything pushed since the last call.
    pub fn finish(&mut self) -> Result<RecordBatch, LakeError> {
        let mut fields: Vec<Field> = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        let mut add = |name: &str, a: ArrayRef| {
            fields.push(Field::new(name, a.data_type().clone(), true));
            cols.push(a);
        };
        add("eventversion", Arc::new(self.version.finish()));
        add("useridentity", Arc::new(self.identity.finish()));
        add(EVENT_TIME, Arc::new(self.time.finish()));
        for (b, k) in self.strings_a.iter_mut().zip(STRINGS_A) {
            add(&k.to_ascii_lowercase(), Arc::new(b.finish()));
        }
        for (b, k) in self.strings_b.iter_mut().zip(STRINGS_B) {
            add(&k.to_ascii_lowercase(), Arc::new(b.finish()));
        }
        for (b, k) in self.maps_a.iter_mut().zip(MAPS_A) {
            add(&k.to_ascii_lowercase(), Arc::new(b.finish()));
        }
        for (b, k) in self.strings_c.iter_mut().zip(STRINGS_C) {
            add(&k.to_ascii_lowercase(), Arc::new(b.finish()));
        }
        add("readonly", Arc::new(self.read_only.finish()));
        let items = Arc::new(self.resources.finish());
        let offsets =
            OffsetBuffer::new(std::mem::replace(&mut self.resource_offsets, vec![0]).into());
        let valid = std::mem::take(&mut self.resource_valid);
        let nulls = (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid));
        let item_field = Arc::new(Field::new("element", items.data_type().clone(), true));
        let list = ListArray::try_new(item_field, offsets, items, nulls)
            .map_err(|e| LakeError::Convert(e.to_string()))?;
        add("resources", Arc::new(list));
        for (b, k) in self.strings_d.iter_mut().zip(STRINGS_D) {
            add(&k.to_ascii_lowercase(), Arc::new(b.finish()));
        }
        add("managementevent", Arc::new(self.management.finish()));
        for (b, k) in self.strings_e.iter_mut().zip(STRINGS_E) {
            add(&k.to_ascii_lowercase(), Arc::new(b.finish()));
        }
        for (b, k) in self.maps_b.iter_mut().zip(MAPS_B) {
            add(&k.to_ascii_lowercase(), Arc::new(b.finish()));
        }
        add("tlsdetails", Arc::new(self.tls.finish()));
        add(
            "sessioncredentialfromconsole",
            Arc::new(self.console.finish()),
        );
        add("eventjson", Arc::new(self.json.finish()));
        add(INGESTION_TIME, Arc::new(self.ingestion.finish()));
        add(STORES, Arc::new(self.stores.finish()));
        self.rows = 0;
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .map_err(|e| LakeError::Convert(e.to_string()))
    }
}

/// The schema of every segment and of the hot set.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| match Converter::new().finish() {
            Ok(b) => b.schema(),
            // An empty batch of fixed builders always assembles.
            Err(e) => panic!("the lake schema does not assemble: {e}"),
        })
        .clone()
}

/// The schema SQL sees: the segment schema without Cairn's hidden columns.
pub fn sql_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let s = schema();
            let fields: Vec<Field> = s
                .fields()
                .iter()
                .filter(|f| f.name() != STORES)
                .map(|f| f.as_ref().clone())
                .collect();
            Arc::new(Schema::new(fields))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, MapArray};
    use arrow::datatypes::TimestampMillisecondType;

    #[test]
    fn a_record_becomes_one_row() {
        let mut c = Converter::new();
        let rec = br#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","userName":"alana","sessionContext":{"attributes":{"mfaAuthenticated":"false"}}},"eventTime":"2024-01-05T13:51:00Z","eventSource":"s3.amazonaws.com","eventName":"CreateBucket","requestParameters":{"bucketName":"b1","n":3,"o":{"x":1}},"readOnly":false,"resources":[{"ARN":"arn:aws:s3:::b1","type":"AWS::S3::Bucket"}],"tlsDetails":{"tlsVersion":"TLSv1.3"}}"#;
        c.push(rec, 1_700_000_000_000, &["s1"]).unwrap();
        c.push(br#"{"eventTime":"2024-01-05T13:52:00Z"}"#, 1, &[])
            .unwrap();
        let b = c.finish().unwrap();
        assert_eq!(b.schema(), schema());
        assert_eq!(b.num_rows(), 2);
        let t = b
            .column_by_name(EVENT_TIME)
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        assert_eq!(t.value(0), 1_704_462_660_000);
        let ui = b.column_by_name("useridentity").unwrap().as_struct();
        assert!(ui.is_null(1));
        assert_eq!(
            ui.column_by_name("username")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "alana"
        );
        let rp = b.column_by_name("requestparameters").unwrap();
        let rp = rp.as_any().downcast_ref::<MapArray>().unwrap();
        let entries = rp.value(0);
        let values = entries.column(1).as_string::<i32>();
        assert_eq!(values.value(0), "b1");
        assert_eq!(values.value(1), "3");
        assert_eq!(values.value(2), r#"{"x":1}"#);
        assert!(rp.is_null(1));
        let res = b.column_by_name("resources").unwrap().as_list::<i32>();
        assert_eq!(res.value(0).len(), 1);
        assert!(res.is_null(1));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut c = Converter::new();
        assert!(c.push(b"\xff", 0, &[]).is_err());
        assert!(c.push(b"[1]", 0, &[]).is_err());
        assert!(c.push(br#"{"eventTime":"yesterday"}"#, 0, &[]).is_err());
        assert_eq!(c.finish().unwrap().num_rows(), 0);
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any member of any shape, where any record member is expected, converts without a
        /// panic, and the row keeps the record verbatim.
        #[test]
        fn any_shapes_convert(members in proptest::collection::vec(
            (proptest::sample::select(vec![
                "userIdentity", "requestParameters", "resources", "tlsDetails", "readOnly",
                "eventName", "addendum", "managementEvent", "sessionCredentialFromConsole",
            ]), json_value()), 0..6)) {
            let mut o = serde_json::Map::new();
            o.insert("eventTime".into(), Value::from("2024-01-05T13:51:00Z"));
            for (k, v) in members {
                o.insert(k.to_owned(), v);
            }
            let text = Value::Object(o).to_string();
            let mut c = Converter::new();
            c.push(text.as_bytes(), 0, &[]).unwrap();
            let b = c.finish().unwrap();
            let json = b.column_by_name("eventjson").unwrap().as_string::<i32>().value(0).to_owned();
            proptest::prop_assert_eq!(json, text);
        }
    }
}
