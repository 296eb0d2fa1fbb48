#!/bin/sh
# Unknown flags and bad values exit 2 with exactly one line saying why.
. "$(dirname "$0")/lib.sh"
one_line() {
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "stderr is not one line"
    contains "$TMP/err" "$1"
}
run 2 --bogus;                        one_line "unknown flag '--bogus'"
run 2 nosuchcommand;                  one_line "unknown command 'nosuchcommand'"
run 2 demo --bogus;                   one_line "unknown flag '--bogus'"
run 2 demo --rate;                    one_line "--rate: needs a value"
run 2 demo --rate -5;                 one_line "--rate: must be a number"
run 2 demo --duration 5;              one_line "--duration: must be a duration > 0"
run 2 demo --panic-rate 1.5;          one_line "--panic-rate: must be a fraction in 0..1, got \"1.5\""
run 2 demo --stall sms;               one_line "--stall: must be POOL@T[+D]"
run 2 demo --slowdown email@10sx0;    one_line "--slowdown: must be POOL@T[+D][xF]"
run 2 demo --stall fax@1s;            one_line "--stall: no pool named \"fax\" (pools: push, sms, email)"
run 2 demo --view fancy;              one_line "--view: must be auto, tty, plain or none"
run 2 demo --log-format xml;          one_line "--log-format: must be logfmt or json"
run 2 demo extra;                     one_line "unexpected argument 'extra'"
echo ok
