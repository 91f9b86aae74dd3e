//! Property tests of the JSON-RPC framing entry points the fuzz targets in `fuzz/` exercise
//! (`jsonrpc::parse`, `lines::next_frame`): arbitrary bytes never panic, and every input yields
//! either a message that round-trips or a protocol-correct JSON-RPC error.

use pf_guard::jsonrpc::{self, ErrorCode, Id, Message};
use pf_guard::lines::{Frame, next_frame};
use proptest::prelude::*;
use serde_json::{Value, json};

fn check_parse(data: &[u8]) -> Result<(), TestCaseError> {
    match jsonrpc::parse(data) {
        Ok(msg) => {
            let frame = msg.to_value().to_string();
            prop_assert_eq!(jsonrpc::parse(frame.as_bytes()), Ok(msg));
        }
        Err(e) => {
            prop_assert!(matches!(
                e.code,
                ErrorCode::ParseError | ErrorCode::InvalidRequest
            ));
            let response = e.to_response();
            prop_assert_eq!(&response["jsonrpc"], "2.0");
            prop_assert_eq!(&response["error"]["code"], &json!(e.code.code()));
            prop_assert!(response["error"]["message"].is_string());
            prop_assert_eq!(
                &response["id"],
                &e.id.as_ref().map(Id::to_value).unwrap_or(Value::Null)
            );
            let reparsed = jsonrpc::parse(response.to_string().as_bytes());
            prop_assert!(
                matches!(
                    reparsed,
                    Ok(Message::Response {
                        outcome: Err(_),
                        ..
                    })
                ),
                "{:?}",
                reparsed
            );
        }
    }
    Ok(())
}

/// JSON-ish bytes: fragments of JSON-RPC so that many inputs get past the JSON parser.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"jsonrpc\"".to_string()),
        Just("\"2.0\"".to_string()),
        Just("\"id\"".to_string()),
        Just("\"method\"".to_string()),
        Just("\"params\"".to_string()),
        Just("\"result\"".to_string()),
        Just("\"error\"".to_string()),
        Just("null".to_string()),
        Just("1".to_string()),
        Just("-2.5".to_string()),
        Just("\"tools/call\"".to_string()),
        "\"[a-z\\\\\"]{0,4}\"",
        Just("true".to_string()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes())
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        any::<i64>().prop_map(Id::Number),
        "[ -~]{0,8}".prop_map(Id::String)
    ]
}

fn params() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!({})),
        "[a-z]{1,6}".prop_map(|s| json!({"name": s, "arguments": {"q": s}})),
        prop::collection::vec(any::<i32>(), 0..4).prop_map(|v| json!(v)),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (id(), "[a-z/]{1,12}", params()).prop_map(|(id, method, params)| Message::Request {
            id,
            method,
            params
        }),
        ("[a-z/]{1,12}", params())
            .prop_map(|(method, params)| Message::Notification { method, params }),
        (prop::option::of(id()), params())
            .prop_map(|(id, r)| Message::Response { id, outcome: Ok(r) }),
        (prop::option::of(id()), any::<i32>(), "[ -~]{0,10}").prop_map(|(id, code, m)| {
            Message::Response {
                id,
                outcome: Err(json!({"code": code, "message": m})),
            }
        }),
    ]
}

/// What `next_frame` must yield for `input`, split on `\n` (the stdio transport's framing).
fn reference_frames(input: &[u8], max: usize) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut segments: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
    let last = segments.pop().unwrap_or_default();
    for seg in segments {
        if seg.len() > max {
            frames.push(Frame::TooLong(seg.len()));
        } else {
            let line = seg.strip_suffix(b"\r").unwrap_or(seg);
            frames.push(Frame::Line(line.to_vec()));
        }
    }
    if last.len() > max {
        frames.push(Frame::TooLong(last.len()));
        frames.push(Frame::Eof {
            partial: Vec::new(),
        });
    } else {
        frames.push(Frame::Eof {
            partial: last.to_vec(),
        });
    }
    frames
}

fn read_frames(input: &[u8], max: usize, capacity: usize) -> Vec<Frame> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut reader = tokio::io::BufReader::with_capacity(capacity, input);
        let mut frames = Vec::new();
        loop {
            let f = next_frame(&mut reader, max)
                .await
                .expect("reading a slice cannot fail");
            let end = matches!(f, Frame::Eof { .. });
            frames.push(f);
            if end {
                return frames;
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_parse_to_a_message_or_a_protocol_error(data in prop::collection::vec(any::<u8>(), 0..256)) {
        check_parse(&data)?;
    }

    #[test]
    fn json_like_bytes_parse_to_a_message_or_a_protocol_error(data in jsonish()) {
        check_parse(&data)?;
    }

    #[test]
    fn well_formed_messages_round_trip(msg in message()) {
        let frame = msg.to_value().to_string();
        prop_assert_eq!(jsonrpc::parse(frame.as_bytes()), Ok(msg));
    }

    #[test]
    fn line_framing_matches_splitting_on_newlines(
        input in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'{'), any::<u8>()], 0..200),
        max in 1usize..40,
        capacity in 1usize..16,
    ) {
        let frames = read_frames(&input, max, capacity);
        prop_assert_eq!(&frames, &reference_frames(&input, max));
        for f in frames {
            if let Frame::Line(line) = f {
                check_parse(&line)?;
            }
        }
    }
}

#[test]
fn a_stream_cut_mid_message_ends_with_the_partial_bytes() {
    let frames = read_frames(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n{\"jsonrpc\":\"2.",
        1024,
        8,
    );
    assert!(matches!(&frames[0], Frame::Line(l) if jsonrpc::parse(l).is_ok()));
    assert_eq!(
        frames[1],
        Frame::Eof {
            partial: b"{\"jsonrpc\":\"2.".to_vec()
        }
    );
    let cut = jsonrpc::parse(b"{\"jsonrpc\":\"2.").expect_err("cut");
    assert_eq!(cut.code, ErrorCode::ParseError);
}
