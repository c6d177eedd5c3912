#!/usr/bin/env bash
# Prune on a real file:// store: two real backups of a small database plus a made-up history
# spanning months (copies of a real snapshot under older ids, manifests rewritten with jq), a
# verified old one, a pinned one, an old pre-restore one, and incomplete ones (old, fresh, and
# one whose lease a live process holds). --dry-run changes nothing and says why; prune leaves
# exactly the expected ids, honours the pin and the lease, deletes the manifest first, and a
# kept snapshot still restores.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"
source "$DC_SOURCE_DIR/tests/harness/prune_lib.sh"

src=$(new_db src)
dst=$(new_db dst)
psql_admin "$src" <<'SQL'
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
CREATE TABLE notes (id serial PRIMARY KEY, body text);
INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 50) g;
SQL
store=$WORK/store
url=$(db_url "$src")
common=(--database "$url" --store "file://$store")

prune_backups
dir=$store/$src
[[ -f $dir/$r2/manifest.json ]] || fail "no real snapshot at $dir/$r2"

history_get() { cat "$dir/$1"; }
history_put() { mkdir -p "$dir/$(dirname "$1")" && cat >"$dir/$1"; }
history_copy() { mkdir -p "$dir/$(dirname "$2")" && cp "$dir/$1" "$dir/$2"; }
history_sync() { :; }
prune_history
ls "$dir/$f6"/verify-*.json >/dev/null || fail "verify left no outcome next to $f6"

# A live writer, as the file store sees one: its lease file locked with flock(2).
mkdir -p "$store/.tmp"
# (The subshell becomes the sleep, so killing $holder frees the lock.)
(
    exec 9>"$store/.tmp/$src.$i_held.lease"
    flock 9
    exec sleep 300
) >/dev/null 2>&1 &
holder=$!
on_exit "kill $holder 2>/dev/null"
for _ in $(seq 100); do
    flock -n "$store/.tmp/$src.$i_held.lease" true 2>/dev/null || break
    sleep 0.05
done
flock -n "$store/.tmp/$src.$i_held.lease" true 2>/dev/null && fail "the lease holder did not take the lock"

listing() { (cd "$store" && find . -printf '%p %s %T@\n' | sort); }

# ---- no rule: refused, nothing changed ----
listing >"$WORK/before"
run_deployctl prune "${common[@]}"
[[ $rc -eq 1 ]] || fail "prune without a rule exited $rc"
grep -q -- "--keep-last" "$WORK/err" || fail "the refusal does not say what to give: $(cat "$WORK/err")"
run_deployctl prune --store "file://$store" --keep-last 1
[[ $rc -eq 1 ]] || fail "prune without a database exited $rc"
grep -q -- "--database all" "$WORK/err" || fail "prune without a database did not ask for one: $(cat "$WORK/err")"
listing >"$WORK/after"
diff -u "$WORK/before" "$WORK/after" >/dev/null || fail "a refused prune changed the store"
pass "prune without a rule or a database refuses and changes nothing"

# ---- dry run ----
prune_check_dry_run
listing >"$WORK/after"
diff -u "$WORK/before" "$WORK/after" >"$WORK/diff" || fail "--dry-run changed the store: $(head -20 "$WORK/diff")"
pass "--dry-run lists what would go and why, as a table and as JSON, and changes nothing"

# ---- prune, the policy from the config file ----
prune_check_prune
for id in $expected_gone; do
    [[ ! -e $dir/$id ]] || fail "$id still has objects in the store: $(ls "$dir/$id")"
done
[[ -f $dir/$f3/pin-release-test ]] || fail "the pin was removed"
[[ -f $dir/$i_held/snapshot.tar ]] || fail "the snapshot whose writer is alive lost its archive"
pass "prune left exactly the expected snapshots (rules, newest verified, pin, grace, live lease)"

# Again: nothing more to delete (what stays, stays).
run_deployctl prune "${common[@]}" --config "$WORK/deployctl.conf" --json
[[ $rc -eq 0 ]] || fail "second prune failed: $(cat "$WORK/err")"
assert_eq 0 "$(jq '[.[] | select(.action == "delete")] | length' "$WORK/out")" "a second prune deletes nothing"

# The writer dies: its lease is free, the old incomplete snapshot goes.
kill "$holder"
wait "$holder" 2>/dev/null || true
run_deployctl prune "${common[@]}" --config "$WORK/deployctl.conf" --json
[[ $rc -eq 0 ]] || fail "prune after the writer died failed: $(cat "$WORK/err")"
assert_eq "$i_held" "$(jq -r '[.[] | select(.deleted) | .id] | join(" ")' "$WORK/out")" "deleted once its writer is gone"
assert_eq '["abandoned"]' "$(jq -c ".[] | select(.id == \"$i_held\") | .reasons" "$WORK/out")" "reason"
[[ ! -e $dir/$i_held ]] || fail "$i_held still in the store"
pass "an old incomplete snapshot is kept while its lease is held, deleted once it is not"

# Unpinned, the pinned one goes (the rules never kept it).
rm "$dir/$f3/pin-release-test"
run_deployctl prune "${common[@]}" --config "$WORK/deployctl.conf" --json
assert_eq "$f3" "$(jq -r '[.[] | select(.deleted) | .id] | join(" ")' "$WORK/out")" "deleted once unpinned"
pass "the pin alone kept $f3"

# ---- deletion order: the manifest goes first ----
# Killed right after deleting the manifest: what is left is an incomplete snapshot, never a
# listed one without its archive; the next prune removes it.
DEPLOYCTL_FAULT=prune-after-manifest run_deployctl prune "${common[@]}" --keep-last 1 --keep-monthly 1
[[ $rc -eq 137 ]] || fail "the fault point did not kill prune (rc $rc): $(cat "$WORK/err")"
half=$(find "$dir" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | while read -r id; do
    [[ -f $dir/$id/manifest.json || $id == "$i_fresh" ]] || echo "$id"
done)
[[ -n $half ]] || fail "no half-deleted snapshot after the kill"
[[ -f $dir/$half/snapshot.tar ]] || fail "the archive went before the manifest ($half)"
run_deployctl snapshots "${common[@]}" --json
jq -e --arg id "$half" 'map(.id) | index($id) == null' "$WORK/out" >/dev/null ||
    fail "a snapshot without its manifest is listed"
# The next prune, slowed down after a manifest, holds the store's prune lease meanwhile: a
# second prune at the same time is refused and changes nothing.
# (It sleeps once $f9's manifest is gone; probing the lease with flock(1) would race with it.)
[[ -f $dir/$f9/manifest.json ]] || fail "$f9 was expected to be there still"
DEPLOYCTL_FAULT=prune-after-manifest:sleep=$(scaled 6) "$DEPLOYCTL" prune "${common[@]}" --keep-last 1 --keep-monthly 1 --json \
    >"$WORK/slow.out" 2>"$WORK/slow.err" &
slow=$!
for _ in $(seq "$(scaled 400)"); do
    [[ -f $dir/$f9/manifest.json ]] || break
    sleep 0.05
done
[[ ! -f $dir/$f9/manifest.json ]] || fail "the slow prune never deleted $f9's manifest: $(cat "$WORK/slow.err")"
run_deployctl prune "${common[@]}" --keep-last 1 --json
[[ $rc -eq 1 ]] || fail "a second prune at the same time exited $rc"
grep -q "another prune" "$WORK/err" || fail "the refusal does not say why: $(cat "$WORK/err")"
wait "$slow" || fail "the slow prune failed: $(cat "$WORK/slow.err")"
cp "$WORK/slow.out" "$WORK/out"
pass "one prune at a time per store"
jq -e --arg id "$half" '.[] | select(.id == $id) | .reasons == ["abandoned"] and .deleted' "$WORK/out" >/dev/null ||
    fail "the half-deleted snapshot was not removed as abandoned: $(cat "$WORK/out")"
[[ ! -e $dir/$half ]] || fail "$half is still in the store"
pass "deletion removes the manifest first; a killed prune leaves an incomplete snapshot the next removes"

# ---- --database all and a second database ----
other=$(new_db other)
psql_admin "$other" -c "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"
run_deployctl backup --database "$(db_url "$other")" --store "file://$store" --quiet
[[ $rc -eq 0 ]] || fail "backup of $other failed: $(cat "$WORK/err")"
o1=$(tail -n 1 "$WORK/out")
run_deployctl prune --database all --store "file://$store" --keep-last 1 --json
[[ $rc -eq 0 ]] || fail "prune --database all failed: $(cat "$WORK/err")"
assert_eq "$o1" "$(jq -r ".[] | select(.database == \"$other\") | .id" "$WORK/out")" "the other database's snapshot"
assert_eq keep "$(jq -r ".[] | select(.id == \"$o1\") | .action" "$WORK/out")" "the other database keeps its newest"
assert_eq keep "$(jq -r ".[] | select(.id == \"$r2\") | .action" "$WORK/out")" "$src keeps its newest"
pass "--database all prunes each database on its own"

# ---- a kept snapshot still restores ----
for id in $f6 $r2; do
    [[ -f $dir/$id/manifest.json ]] || fail "$id was expected to be kept"
    run_deployctl restore "$id" "${common[@]}" --target "$(db_url "$dst")" --yes
    [[ $rc -eq 0 ]] || fail "restore of kept $id failed: $(cat "$WORK/err")"
    diff <(fingerprint "$src") <(fingerprint "$dst") >/dev/null || fail "restored $id differs from the source"
done
pass "kept snapshots restore after pruning"

# The second restore over $dst (it had tables) took a pre-restore snapshot of it: with a regular
# one older than it, keep-last 1 keeps the regular one, and the window keeps the pre-restore one.
run_deployctl snapshots --database "$(db_url "$dst")" --store "file://$store" --json
pre=$(jq -r '.[] | select(.tag == "pre-restore") | .id' "$WORK/out")
[[ -n $pre ]] || fail "the restore over $dst took no pre-restore snapshot: $(cat "$WORK/out")"
run_deployctl backup --database "$(db_url "$dst")" --store "file://$store" --tag nightly --quiet
[[ $rc -eq 0 ]] || fail "backup of $dst failed: $(cat "$WORK/err")"
d1=$(tail -n 1 "$WORK/out")
sleep 1 # ids have one-second resolution: the pre-restore one must be the newest
run_deployctl restore "$f6" "${common[@]}" --target "$(db_url "$dst")" --yes
[[ $rc -eq 0 ]] || fail "third restore failed: $(cat "$WORK/err")"
run_deployctl prune --database "$(db_url "$dst")" --store "file://$store" --keep-last 1 --json
[[ $rc -eq 0 ]] || fail "prune of $dst failed: $(cat "$WORK/err")"
pre2=$(jq -r '[.[] | select(.tag == "pre-restore") | .id] | max' "$WORK/out")
assert_eq '["keep-last"]' "$(jq -c ".[] | select(.id == \"$d1\") | .reasons" "$WORK/out")" "the regular snapshot"
assert_eq '["newest","pre-restore"]' "$(jq -c ".[] | select(.id == \"$pre2\") | .reasons" "$WORK/out")" "the newest pre-restore"
assert_eq '["pre-restore"]' "$(jq -c ".[] | select(.id == \"$pre\") | .reasons" "$WORK/out")" "the first pre-restore"
pass "pre-restore snapshots are kept within their window and not counted by keep-last"
