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
# bench hands its flags to the driver, after checking them (bench_flags.h):
# one line, not the driver's usage, whether or not the driver is built.
run 2 bench --bogus;                  one_line "sluice bench: unknown flag '--bogus' (see sluice bench --help)"
run 2 bench --quick --runs;           one_line "sluice bench: --runs needs a value (see sluice bench --help)"
run 2 bench extra;                    one_line "sluice bench: unexpected argument 'extra' (see sluice bench --help)"
run 2 bench --runs=3;                 one_line "sluice bench: unknown flag '--runs=3'"
run 2 demo --listen 127.0.0.1:99999;  one_line "--listen: must be host:port with a port in 0..65535, got \"127.0.0.1:99999\""
run 2 demo --listen 127.0.0.1:http;   one_line "--listen: must be host:port with a port in 0..65535"
run 2 demo --listen 127.0.0.1:;       one_line "--listen: must be host:port with a port in 0..65535"
run 2 demo --listen 9464;             one_line "--listen: must be host:port with a port in 0..65535"
run 2 demo --listen 127.0.0.1:-1;     one_line "--listen: must be host:port with a port in 0..65535"
run 2 demo --admin-token-file "$TMP/none"; one_line "--admin-token-file: $TMP/none: No such file or directory"
printf 'has space\n' >"$TMP/tok"
run 2 demo --admin-token-file "$TMP/tok"; one_line "character 4 of the token is not allowed"
: >"$TMP/tok"
run 2 demo --admin-token-file "$TMP/tok"; one_line "--admin-token-file: $TMP/tok: empty; want one line holding the token"
echo ok
