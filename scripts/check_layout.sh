#!/usr/bin/env bash
# The layout rules of the README's Layout section that the compiler does not see, checked on the
# source tree (run by ctest as test_layout, so `make test` and CI fail on a violation):
#   - server/ includes model.h, store.h, config.h and web.h of the other folders and
#     nothing deeper (no sub-library header of model/, no private header of storage/);
#   - model/, storage/, config/ and web/ include only headers of their own folder
#     (leaves never include each other or server/);
#   - no source file is longer than 1,500 lines.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
fail=0

server_allowed=" server.h http/http.h api/api.h api/oai.h gen/gen.h cli/cli.h model.h store.h config.h web.h "
while IFS= read -r line; do
    file=${line%%:*}
    hdr=$(sed -n 's/.*#include "\([^"]*\)".*/\1/p' <<<"$line")
    case "$server_allowed" in
    *" $hdr "*) ;;
    *) echo "layout: $file includes \"$hdr\": server/ may include only its own headers and model.h, store.h, config.h, web.h"; fail=1 ;;
    esac
done < <(grep -rn --include='*.c' --include='*.h' '^#include "' server)

# A leaf's quoted include must name a header inside the leaf's own folder.
for leaf in model storage config web; do
    while IFS= read -r line; do
        file=${line%%:*}
        hdr=$(sed -n 's/.*#include "\([^"]*\)".*/\1/p' <<<"$line")
        base=$(basename "$hdr")
        if ! find "$leaf" -name "$base" -path "*$hdr" | grep -q .; then
            echo "layout: $file includes \"$hdr\", which is not a header of $leaf/"
            fail=1
        fi
    done < <(grep -rn --include='*.c' --include='*.h' '^#include "' "$leaf")
done

while IFS= read -r f; do
    n=$(wc -l <"$f")
    if [ "$n" -gt 1500 ]; then
        echo "layout: $f has $n lines (more than 1,500: split it by concern)"
        fail=1
    fi
done < <(find server model storage config web tests -name '*.[ch]' -not -path 'tests/fixtures/*')

[ "$fail" = 0 ] && echo "layout: ok"
exit "$fail"
