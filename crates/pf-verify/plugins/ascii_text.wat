;; pf-verify example plugin "ascii-text" (ABI pf-verify/wasm/v1, see docs/verify.md).
;;
;; Proves that the obligation's first input (`file`) is printable ASCII text: every byte is
;; 0x20..=0x7E, TAB, LF or CR. Refutes with the offset and value of the first other byte.
;; Memory map: 0..512 constant strings, 900..920 digit scratch, 1024..2048 output, heap from 4096.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (global $out (mut i32) (i32.const 1024))

  (data (i32.const 0) "{\"verdict\":{\"status\":\"proved\"},\"statistics\":{\"bytes\":")
  (data (i32.const 100) "{\"verdict\":{\"status\":\"refuted\",\"evidence\":{\"offset\":")
  (data (i32.const 200) ",\"byte\":")
  (data (i32.const 220) "}},\"statistics\":{\"bytes\":")
  (data (i32.const 260) "}}")
  (data (i32.const 270) "{\"verdict\":{\"status\":\"error\",\"reason\":\"malformed input frame\"}}")

  ;; Bump allocator for the host's input buffer; grows memory as needed, 0 on failure.
  (func (export "pf_alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32) (local $pages i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then (return (i32.const 0))))
    (local.set $pages
      (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq
              (memory.grow (i32.sub (local.get $pages) (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func $emit (param $src i32) (param $len i32)
    (memory.copy (global.get $out) (local.get $src) (local.get $len))
    (global.set $out (i32.add (global.get $out) (local.get $len))))

  ;; Decimal digits of an unsigned number.
  (func $emit_u32 (param $n i32)
    (local $p i32)
    (local.set $p (i32.const 920))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (i32.ne (local.get $n) (i32.const 0))))
    (call $emit (local.get $p) (i32.sub (i32.const 920) (local.get $p))))

  (func $result (result i64)
    (i64.or
      (i64.shl (i64.const 1024) (i64.const 32))
      (i64.extend_i32_u (i32.sub (global.get $out) (i32.const 1024)))))

  (func $malformed (result i64)
    (call $emit (i32.const 270) (i32.const 63))
    (call $result))

  (func (export "pf_check") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $p i32) (local $n i32) (local $i i32) (local $b i32)
    (global.set $out (i32.const 1024))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    ;; magic "PFV1", input count, first input's role length
    (if (i32.lt_u (local.get $len) (i32.const 12)) (then (return (call $malformed))))
    (if (i32.ne (i32.load (local.get $ptr)) (i32.const 0x31564650))
      (then (return (call $malformed))))
    (if (i32.eqz (i32.load offset=4 (local.get $ptr))) (then (return (call $malformed))))
    (local.set $p (i32.add (local.get $ptr) (i32.const 8)))
    ;; skip the role string
    (local.set $n (i32.load (local.get $p)))
    (local.set $p (i32.add (local.get $p) (i32.const 4)))
    (if (i32.gt_u (local.get $n) (i32.sub (local.get $end) (local.get $p)))
      (then (return (call $malformed))))
    (local.set $p (i32.add (local.get $p) (local.get $n)))
    ;; data length
    (if (i32.lt_u (i32.sub (local.get $end) (local.get $p)) (i32.const 4))
      (then (return (call $malformed))))
    (local.set $n (i32.load (local.get $p)))
    (local.set $p (i32.add (local.get $p) (i32.const 4)))
    (if (i32.gt_u (local.get $n) (i32.sub (local.get $end) (local.get $p)))
      (then (return (call $malformed))))
    (local.set $i (i32.const 0))
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (if (i32.eqz
              (i32.or
                (i32.and (i32.ge_u (local.get $b) (i32.const 0x20))
                         (i32.le_u (local.get $b) (i32.const 0x7e)))
                (i32.or (i32.eq (local.get $b) (i32.const 9))
                        (i32.or (i32.eq (local.get $b) (i32.const 10))
                                (i32.eq (local.get $b) (i32.const 13))))))
          (then
            (call $emit (i32.const 100) (i32.const 52))
            (call $emit_u32 (local.get $i))
            (call $emit (i32.const 200) (i32.const 8))
            (call $emit_u32 (local.get $b))
            (call $emit (i32.const 220) (i32.const 25))
            (call $emit_u32 (local.get $n))
            (call $emit (i32.const 260) (i32.const 2))
            (return (call $result))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (call $emit (i32.const 0) (i32.const 53))
    (call $emit_u32 (local.get $n))
    (call $emit (i32.const 260) (i32.const 2))
    (call $result))
)
