#!/usr/bin/env bash
# Prune on a real file:// store: two real backups of a small database plus a made-up history
# spanning months (copies of a real snapshot under older ids, manifests rewritten with jq), a
# verified old one, a pinned one, an old pre-restore one, and incomplete ones (old, fresh, and
# one whose lease a live process holds). --dry-run changes nothing and says why; prune leaves
# exactly the expected ids, honours the pin and the lease, deletes the manifest first, and a
# kept snapshot still restores.
source "$DC_SOURCE_DIR/tests/harness/lib.sh"

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

backup() { # tag
    run_deployctl backup "${common[@]}" --tag "$1" --quiet
    [[ $rc -eq 0 ]] || fail "backup failed: $(cat "$WORK/err")"
    tail -n 1 "$WORK/out"
}
r1=$(backup nightly)
r2=$(backup nightly)
# Ids carry the time to the second; within one second a later backup takes a larger suffix, so
# the newest is the one that sorts last even when both fell into the same second.
[[ $r2 > $r1 ]] || fail "the second backup's id $r2 sorts before the first's, $r1"
dir=$store/$src
[[ -f $dir/$r2/manifest.json ]] || fail "no real snapshot at $dir/$r2"

# A copy of the real snapshot $r1 under another id and time (and tag), as if taken then.
fabricate() { # id tag
    local id=$1 tag=$2 stamp
    stamp=$(sed -E 's/^(....)(..)(..)T(..)(..)(..)Z-.*/\1-\2-\3T\4:\5:\6Z/' <<<"$id")
    mkdir "$dir/$id"
    cp "$dir/$r1/snapshot.tar" "$dir/$id/"
    jq --arg id "$id" --arg at "$stamp" --arg tag "$tag" '.id = $id | .created_at = $at | .tag = $tag' \
        "$dir/$r1/manifest.json" >"$dir/$id/manifest.json"
}
f1=20250105T020000Z-f001 # Sun, ISO 2025-W01, January
f2=20250301T020000Z-f002 # Sat 2025-W09, March
f3=20250302T020000Z-f003 # Sun 2025-W09: pinned
f4=20250303T020000Z-f004 # Mon 2025-W10
f5=20250303T120000Z-f005 # Mon 2025-W10, the same day
f6=20250401T020000Z-f006 # Tue 2025-W14, April: verified, the newest verified
f7=20250415T020000Z-f007 # Tue 2025-W16, April's newest
f8=20250501T020000Z-f008 # Thu 2025-W18, May
f9=20250502T020000Z-f009 # Fri 2025-W18, May's newest
p1=20250420T020000Z-f00a # an old pre-restore snapshot
for id in $f1 $f2 $f3 $f4 $f5 $f6 $f7 $f8 $f9; do fabricate "$id" nightly; done
fabricate "$p1" pre-restore

run_deployctl show "$f6" "${common[@]}" --json
[[ $rc -eq 0 ]] || fail "a fabricated snapshot is not readable: $(cat "$WORK/err")"
run_deployctl verify "$f6" "${common[@]}"
[[ $rc -eq 0 ]] || fail "verify of the fabricated $f6 failed: $(cat "$WORK/err")"
ls "$dir/$f6"/verify-*.json >/dev/null || fail "verify left no outcome next to $f6"

# The pin a future `release` writes (see "pins" in include/deployctl/snapshot.h), by hand.
echo '{"owner":"release-test","note":"pinned by hand in prune.sh"}' >"$dir/$f3/pin-release-test"

# Incomplete snapshots: no manifest.
incomplete() { # id
    mkdir "$dir/$1"
    cp "$dir/$r1/snapshot.tar" "$dir/$1/"
}
i_old=20250210T020000Z-f0b1                                # writer long gone: deleted
i_fresh=$(date -u -d '-1 hour' +%Y%m%dT%H%M%SZ)-f0b2        # within the grace: kept
i_held=20250211T020000Z-f0b3                               # old, but its writer is alive
for id in $i_old $i_fresh $i_held; do incomplete "$id"; done
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
sorted() { tr ' ' '\n' <<<"$*" | sort | tr '\n' ' ' | sed 's/ $//'; }
all=$(sorted "$r1 $r2 $f1 $f2 $f3 $f4 $f5 $f6 $f7 $f8 $f9 $p1 $i_old $i_fresh $i_held")
# --keep-daily 1 --keep-monthly 3: the newest of today ($r2), the newest of the three newest
# months ($r2, $f9 for May, $f7 for April); plus the newest verified ($f6), the pinned ($f3),
# the fresh incomplete one and the one whose writer is alive.
expected_kept=$(sorted "$r2 $f9 $f7 $f6 $f3 $i_fresh $i_held")
expected_gone=$(sorted "$r1 $f1 $f2 $f4 $f5 $f8 $p1 $i_old")

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
run_deployctl prune "${common[@]}" --keep-daily 1 --keep-monthly 3 --dry-run
[[ $rc -eq 0 ]] || fail "dry run failed: $(cat "$WORK/err")"
listing >"$WORK/after"
diff -u "$WORK/before" "$WORK/after" >"$WORK/diff" || fail "--dry-run changed the store: $(head -20 "$WORK/diff")"
grep -E "^would-delete .* $r1 .*no retention rule keeps it" "$WORK/out" >/dev/null ||
    fail "dry run does not say why $r1 would go: $(cat "$WORK/out")"
grep -E "^would-delete .* $i_old .*older than the grace period" "$WORK/out" >/dev/null ||
    fail "dry run does not say why the old incomplete one would go"
grep -E "^keep .* $f3 .*pinned \(pin-release-test\)" "$WORK/out" >/dev/null || fail "dry run does not show the pin"
grep -E "^keep .* $f6 .*newest-verified" "$WORK/out" >/dev/null || fail "dry run does not keep the newest verified"
grep -E "^keep .* $r2 .*keep-daily, keep-monthly, newest" "$WORK/out" >/dev/null || fail "reasons of $r2: $(grep "$r2" "$WORK/out")"
grep -q "nothing was changed" "$WORK/err" || fail "dry run summary missing: $(cat "$WORK/err")"
pass "--dry-run lists what would go and why, and changes nothing"

run_deployctl prune "${common[@]}" --keep-daily 1 --keep-monthly 3 --dry-run --json
[[ $rc -eq 0 ]] || fail "dry run --json failed: $(cat "$WORK/err")"
assert_eq "$all" "$(jq -r '[.[].id] | sort | join(" ")' "$WORK/out")" "every snapshot in the JSON"
assert_eq "$expected_kept" "$(jq -r '[.[] | select(.action == "keep") | .id] | sort | join(" ")' "$WORK/out")" "kept (dry run, JSON)"
assert_eq "$expected_gone" "$(jq -r '[.[] | select(.action == "delete") | .id] | sort | join(" ")' "$WORK/out")" "deleted (dry run, JSON)"
assert_eq '["keep-monthly"]' "$(jq -c ".[] | select(.id == \"$f7\") | .reasons" "$WORK/out")" "reasons of $f7"
assert_eq '["in-progress"]' "$(jq -c ".[] | select(.id == \"$i_held\") | .reasons" "$WORK/out")" "reasons of the held one"
assert_eq '["incomplete-grace"]' "$(jq -c ".[] | select(.id == \"$i_fresh\") | .reasons" "$WORK/out")" "reasons of the fresh one"
assert_eq '["expired"]' "$(jq -c ".[] | select(.id == \"$p1\") | .reasons" "$WORK/out")" "the old pre-restore one"
assert_eq "pre-restore|$src" "$(jq -r ".[] | select(.id == \"$p1\") | .tag + \"|\" + .database" "$WORK/out")" "tag and database"
assert_eq "2025-05-02T02:00:00Z" "$(jq -r ".[] | select(.id == \"$f9\") | .created_at" "$WORK/out")" "created_at"
assert_eq 0 "$(jq '[.[] | select(.deleted)] | length' "$WORK/out")" "nothing deleted in a dry run"
listing >"$WORK/after"
diff -u "$WORK/before" "$WORK/after" >/dev/null || fail "--dry-run --json changed the store"
pass "--dry-run --json: every snapshot with its action and reasons"

# ---- prune, the policy from the config file ----
cat >"$WORK/deployctl.conf" <<'EOF'
[retention]
keep_daily = 1
keep_monthly = 3
incomplete_grace = 24h
EOF
run_deployctl prune "${common[@]}" --config "$WORK/deployctl.conf" --json
[[ $rc -eq 0 ]] || fail "prune failed: $(cat "$WORK/err")"
assert_eq "$expected_gone" "$(jq -r '[.[] | select(.deleted) | .id] | sort | join(" ")' "$WORK/out")" "deleted"
grep -q "pruned: 8 snapshots deleted" "$WORK/err" || fail "summary: $(cat "$WORK/err")"
grep -q "deleted snapshot $r1 of $src (no retention rule keeps it)" "$WORK/err" || fail "no log line for $r1"
run_deployctl snapshots "${common[@]}" --all --json
[[ $rc -eq 0 ]] || fail "snapshots failed: $(cat "$WORK/err")"
assert_eq "$expected_kept" "$(jq -r '[.[].id] | sort | join(" ")' "$WORK/out")" "snapshots left after prune"
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
