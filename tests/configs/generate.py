#!/usr/bin/env python3
"""Regenerate the tests/configs corpus and record the real csync2's behaviour.

Usage: python3 tests/configs/generate.py [OUTDIR]   (default: this directory)
Every entry states its true error location (file/line) and a predicted
message; the real /usr/sbin/csync2 is run on it and its exit code, stderr
message and stdout are written to NAME/expect.  Prints MISMATCH lines when the
real binary disagrees with the prediction.
"""
import os, shutil, subprocess, sys, tempfile

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
REAL = "/usr/sbin/csync2"
KEY = "Vq3xT8bLk2NwZr7YpHc5Md9Fs1Gj4Ue6Aa0Bb.Cc_DdEeFfGgHhIiJjKkLlMmNnOo\n"

G = "group g {\n host h1.cfg.test;\n key k1.key;\n}\n"   # 4 lines

E = {}  # name -> dict


def e(name, cfg, file=None, line=None, msg=None, files=None, args=None, note=None,
      key=True, exit=1, stdout=""):
    assert name not in E, name
    f = {}
    if key:
        f["k1.key"] = KEY
    if cfg is not None:
        f["csync2.cfg"] = cfg
    if files:
        f.update(files)
    E[name] = dict(files=f, file=file, line=line, msg=msg, args=args, note=note,
                   exit=exit, stdout=stdout)


SYN = "Near line {}: syntax error"

# ---------------------------------------------------------------- §2.7 lexer gotchas
e("lex_group_name_brace_glued", "group g{\n host h1.cfg.test;\n key k1.key;\n}\n",
  "csync2.cfg", 2, SYN.format(2), note="`g{` is one word; `host` arrives where `{` is expected")
e("lex_brace_host_glued", "group g\n{host h1.cfg.test;\n key k1.key;\n}\n",
  "csync2.cfg", 2, SYN.format(2), note="`{host` is one word where `{` is expected")
e("lex_double_close_brace",
  "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  exec \"true\";\n }}\n",
  "csync2.cfg", 6, SYN.format(6), note="`}}` is one word inside the action block")
e("lex_close_brace_glued_to_word",
  "group g {\n host h1.cfg.test;\n key k1.key;\n include /tmp/x}\n",
  "csync2.cfg", 5, SYN.format(5),
  note="`/tmp/x}` is one word, so the group is still open: error at EOF (line = 1 + newlines)")
e("lex_on_host_colon_path_glued",
  "prefix p {\n on h1.cfg.test:/tmp;\n}\n" + G,
  "csync2.cfg", 2, SYN.format(2), note="`h1.cfg.test:/tmp` is one word; `;` arrives where `:` is expected")
e("lex_on_host_space_colon_path",
  "prefix p {\n on h1.cfg.test :/tmp;\n}\n" + G,
  "csync2.cfg", 2, SYN.format(2), note="`:/tmp` is one word where `:` is expected")
e("lex_trailing_colon_in_host",
  "group g {\n host h1.cfg.test a:;\n key k1.key;\n}\n",
  "csync2.cfg", 2, SYN.format(2), note="`a:` is word `a` + token `:`")
e("lex_hash_glued_to_word",
  "group g {\n host h1.cfg.test#comment;\n key k1.key;\n}\n",
  "csync2.cfg", 3, SYN.format(3), note="`#` glued to a word starts a comment which eats the `;`")
e("lex_at_inside_word_missing_peer",
  "group g {\n host h1.cfg.test a@;\n key k1.key;\n}\n",
  "csync2.cfg", 2, SYN.format(2), note="`host a@;`")
e("lex_at_leading",
  "group g {\n host h1.cfg.test;\n host @b;\n key k1.key;\n}\n",
  "csync2.cfg", 3, SYN.format(3), note="`host @b;`")
e("lex_keyword_as_pattern",
  "group g {\n host h1.cfg.test;\n key k1.key;\n include on;\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="`include on;` — keywords are recognised everywhere")
e("lex_keyword_as_host",
  "group g {\n host h1.cfg.test\n      key;\n key k1.key;\n}\n",
  "csync2.cfg", 3, SYN.format(3), note="a host named `key` (keyword) on a continuation line")
e("lex_keyword_prefix_word_is_word",
  "group g {\n host h1.cfg.test;\n key k1.key;\n hosts a;\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="`hosts` is an ordinary word, not the keyword")
e("lex_group_capitalised", "Group g {\n host h1.cfg.test;\n key k1.key;\n}\n",
  "csync2.cfg", 1, SYN.format(1), note="`Group` is a plain word at top level (line 1)")
e("lex_unterminated_quote",
  "group g {\n host h1.cfg.test;\n key k1.key;\n include \"/tmp/x;\n}\n\n# end\n",
  "csync2.cfg", 8, SYN.format(8),
  note="the unterminated string swallows the rest of the file; error at EOF, line = 1 + number of newlines")
e("lex_empty_string_key", "group g {\n host h1.cfg.test;\n key \"\";\n}\n",
  "csync2.cfg", 3, SYN.format(3), note="`\"\"` produces no token: `key ;`")
e("lex_quoted_multiline_counts_lines",
  "group g {\n host h1.cfg.test;\n key k1.key;\n include \"/a\nb\nc\";\n}\n}\n",
  "csync2.cfg", 8, SYN.format(8), note="newlines inside a quoted string count")
e("lex_host_config_keyword",
  "group g {\n host config;\n key k1.key;\n}\n",
  "csync2.cfg", 3, SYN.format(3),
  note="`config;` is an empty include that swallows the `;`, so `key` continues the host list")

# ---------------------------------------------------------------- grammar
e("syn_missing_semicolon_mid",
  "group g {\n host h1.cfg.test\n key k1.key;\n}\n",
  "csync2.cfg", 3, SYN.format(3), note="missing `;` after host list: `key` arrives inside the host list")
e("syn_missing_semicolon_last",
  "group g {\n host h1.cfg.test;\n key k1.key\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="missing `;` before `}`")
e("syn_semicolon_after_group", G[:-1] + ";\n",
  "csync2.cfg", 4, SYN.format(4), note="`};` after a group block")
e("syn_semicolon_after_group_next_line", G + ";\n",
  "csync2.cfg", 5, SYN.format(5), note="lone `;` at top level after a group")
e("syn_lone_semicolon_line1", ";\n" + G,
  "csync2.cfg", 1, SYN.format(1), note="lone `;` on line 1")
e("syn_lone_semicolon_in_group",
  "group g {\n host h1.cfg.test;\n ;\n key k1.key;\n}\n",
  "csync2.cfg", 3, SYN.format(3), note="empty statement inside a group")
e("syn_lone_semicolon_in_action",
  "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  exec \"x\";\n  ;\n }\n}\n",
  "csync2.cfg", 6, SYN.format(6), note="empty statement inside an action")
e("syn_semicolon_after_action",
  "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  exec \"x\";\n };\n}\n",
  "csync2.cfg", 6, SYN.format(6), note="`};` after an action block")
e("syn_host_at_top", G + "host h1.cfg.test;\n",
  "csync2.cfg", 5, SYN.format(5), note="group statement `host` at top level")
e("syn_key_at_top", "key k1.key;\n" + G,
  "csync2.cfg", 1, SYN.format(1), note="group statement `key` at top level")
e("syn_include_at_top", G + "\n\ninclude /tmp;\n",
  "csync2.cfg", 7, SYN.format(7), note="group statement `include` at top level")
e("syn_nossl_in_group",
  "group g {\n host h1.cfg.test;\n nossl * *;\n key k1.key;\n}\n",
  "csync2.cfg", 3, SYN.format(3), note="top-level statement `nossl` inside a group")
e("syn_ignore_in_group",
  "group g {\n host h1.cfg.test;\n key k1.key;\n ignore uid;\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="top-level statement `ignore` inside a group")
e("syn_prefix_in_group",
  "group g {\n host h1.cfg.test;\n key k1.key;\n prefix p { }\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="`prefix` inside a group")
e("syn_group_in_group",
  "group g {\n host h1.cfg.test;\n key k1.key;\n group h {\n }\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="nested group")
e("syn_action_at_top", G + "action {\n exec \"x\";\n}\n",
  "csync2.cfg", 5, SYN.format(5), note="`action` at top level")
e("syn_action_nested",
  "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  action {\n  }\n }\n}\n",
  "csync2.cfg", 5, SYN.format(5), note="nested action")
e("syn_action_without_brace",
  "group g {\n host h1.cfg.test;\n key k1.key;\n action exec \"x\";\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="`action` not followed by `{`")
e("syn_pattern_in_group",
  "group g {\n host h1.cfg.test;\n key k1.key;\n pattern /x;\n}\n",
  "csync2.cfg", 4, SYN.format(4), note="action statement directly in a group")
e("syn_host_in_action",
  "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  host a;\n }\n}\n",
  "csync2.cfg", 5, SYN.format(5), note="group statement inside an action")
e("syn_nested_parens",
  "group g {\n host h1.cfg.test (a (b));\n key k1.key;\n}\n",
  "csync2.cfg", 2, SYN.format(2), note="nested `( ( ) )`")
e("syn_unclosed_paren",
  "group g {\n host h1.cfg.test (a;\n key k1.key;\n}\n",
  "csync2.cfg", 2, SYN.format(2), note="`(` without `)`")
e("syn_prefix_without_block", "prefix p;\n" + G,
  "csync2.cfg", 1, SYN.format(1), note="`prefix NAME;`")
e("syn_prefix_missing_name", "prefix {\n}\n" + G,
  "csync2.cfg", 1, SYN.format(1), note="`prefix {` — a lone `{` is a token, not a NAME")
e("syn_prefix_on_missing_colon", "prefix p {\n on h1.cfg.test /tmp;\n}\n" + G,
  "csync2.cfg", 2, SYN.format(2), note="`on HOST PATH;` without `:`")
e("syn_nossl_one_arg", "nossl *;\n" + G, "csync2.cfg", 1, SYN.format(1), note="`nossl` with one word")
e("syn_nossl_three_args", G + "nossl * * *;\n", "csync2.cfg", 5, SYN.format(5), note="`nossl` with three words")
e("syn_tempdir_no_arg", "tempdir;\n" + G, "csync2.cfg", 1, SYN.format(1), note="`tempdir;`")
e("syn_tempdir_two_args", "tempdir /tmp\n  /var/tmp;\n" + G, "csync2.cfg", 2, SYN.format(2), note="`tempdir` with two words (second on line 2)")
e("syn_lock_timeout_two_args", "lock-timeout 1 2;\n" + G, "csync2.cfg", 1, SYN.format(1), note="`lock-timeout 1 2;`")
e("syn_lock_timeout_no_arg", G + "lock-timeout;\n", "csync2.cfg", 5, SYN.format(5), note="`lock-timeout;`")
e("syn_database_no_arg", "database;\n" + G, "csync2.cfg", 1, SYN.format(1), note="`database;`")
e("syn_database_two_args", "database /tmp /tmp;\n" + G, "csync2.cfg", 1, SYN.format(1), note="`database` with two words")
e("syn_key_no_arg", "group g {\n host h1.cfg.test;\n key;\n}\n", "csync2.cfg", 3, SYN.format(3), note="`key;`")
e("syn_key_two_args", "group g {\n host h1.cfg.test;\n key k1.key k1.key;\n}\n", "csync2.cfg", 3, SYN.format(3), note="`key A B;`")
e("syn_auto_no_arg", "group g {\n host h1.cfg.test;\n key k1.key;\n auto;\n}\n", "csync2.cfg", 4, SYN.format(4), note="`auto;`")
e("syn_auto_two_args", "group g {\n host h1.cfg.test;\n key k1.key;\n auto none younger;\n}\n", "csync2.cfg", 4, SYN.format(4), note="`auto A B;`")
e("syn_backup_directory_no_arg", "group g {\n host h1.cfg.test;\n key k1.key;\n backup-directory;\n}\n", "csync2.cfg", 4, SYN.format(4), note="`backup-directory;`")
e("syn_backup_directory_two_args", "group g {\n host h1.cfg.test;\n key k1.key;\n backup-directory /a /b;\n}\n", "csync2.cfg", 4, SYN.format(4), note="`backup-directory A B;`")
e("syn_backup_generations_no_arg", "group g {\n host h1.cfg.test;\n key k1.key;\n backup-generations;\n}\n", "csync2.cfg", 4, SYN.format(4), note="`backup-generations;`")
e("syn_backup_generations_two_args", "group g {\n host h1.cfg.test;\n key k1.key;\n backup-generations 3 4;\n}\n", "csync2.cfg", 4, SYN.format(4), note="`backup-generations 3 4;`")
e("syn_logfile_no_arg", "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  logfile;\n }\n}\n", "csync2.cfg", 5, SYN.format(5), note="`logfile;`")
e("syn_logfile_two_args", "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  logfile /a /b;\n }\n}\n", "csync2.cfg", 5, SYN.format(5), note="`logfile A B;`")
e("syn_do_local_arg", "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  exec \"x\";\n  do-local x;\n }\n}\n", "csync2.cfg", 6, SYN.format(6), note="`do-local x;`")
e("syn_do_local_only_arg", "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  do-local-only yes;\n }\n}\n", "csync2.cfg", 5, SYN.format(5), note="`do-local-only yes;`")
e("syn_no_cygwin_lowercase_arg", "no-cygwin-lowercase yes;\n" + G, "csync2.cfg", 1, SYN.format(1), note="`no-cygwin-lowercase` takes no argument")
e("syn_mygroup_without_group_keyword", "mygroup {\n host h1.cfg.test;\n key k1.key;\n}\n", "csync2.cfg", 1, SYN.format(1), note="quick-start guide example without `group`")
e("syn_eof_in_group", "group g {\n host h1.cfg.test;\n key k1.key;\n", "csync2.cfg", 4, SYN.format(4), note="missing `}` at EOF; line = 1 + newlines")
e("syn_eof_no_trailing_newline", "group g {\n host h1.cfg.test;\n key k1.key;", "csync2.cfg", 3, SYN.format(3), note="missing `}` at EOF without a final newline")
e("syn_eof_after_blank_lines", G + "group h {\n\n\n\n", "csync2.cfg", 9, SYN.format(9), note="EOF after blank lines")
e("syn_crlf_missing_semicolon", "group g {\r\n host h1.cfg.test;\r\n key k1.key\r\n}\r\n", "csync2.cfg", 4, SYN.format(4), note="CRLF file, missing `;`")
e("syn_cr_only_line_ends", "group g {\r host h1.cfg.test;\r key k1.key;\r}\r}\r", "csync2.cfg", 1, SYN.format(1), note="CR-only line ends do not count as lines")
e("syn_error_after_comment_lines", "# comment 1\n#comment 2\n\n   # 4\n" + "group g {\n host h1.cfg.test;\n key k1.key;\n};\n", "csync2.cfg", 8, SYN.format(8), note="comment lines count")

# ---------------------------------------------------------------- semantic errors
MK = "Config error: every group must have a key."
e("sem_missing_key", "group g {\n host h1.cfg.test;\n}\n", msg=MK, note="group without key")
e("sem_missing_key_empty_group", "group {\n}\n" + G, msg=MK, note="empty anonymous group")
e("sem_missing_key_before_syntax_error", "group g {\n host h1.cfg.test;\n}\n;\n", msg=MK,
  note="the key check at `}` happens before the later syntax error")
e("sem_two_keys", "group g {\n host h1.cfg.test;\n key k1.key;\n key k1.key;\n}\n",
  msg="Config error: a group might only have one key.", note="two keys")
e("sem_key_file_missing", "group g {\n host h1.cfg.test;\n key nosuch.key;\n}\n",
  msg="Config error: Can't read keyfile $SYSDIR/nosuch.key.", note="relative key file resolved in the system dir")
e("sem_key_file_missing_absolute", "group g {\n host h1.cfg.test;\n key /nonexistent/csync2/k.key;\n}\n",
  msg="Config error: Can't read keyfile /nonexistent/csync2/k.key.", note="absolute key path")
e("sem_key_file_is_directory", "group g {\n host h1.cfg.test;\n key kdir;\n}\n",
  msg="Config error: Can't read keyfile $SYSDIR/kdir.", files={"kdir/.keep": ""},
  note="key 'file' is a directory (unreadable)")
e("sem_key_file_empty", "group g {\n host h1.cfg.test;\n key empty.key;\n}\n",
  msg="Config error: Can't read keyfile $SYSDIR/empty.key.", files={"empty.key": ""}, note="empty key file")
e("sem_key_file_only_newline", "group g {\n host h1.cfg.test;\n key nl.key;\n}\n",
  msg="Config error: Key in file $SYSDIR/nl.key is too short.", files={"nl.key": "\n"}, note="key file with just a newline")
e("sem_key_file_short", "group g {\n host h1.cfg.test;\n key short.key;\n}\n",
  msg="Config error: Key in file $SYSDIR/short.key is too short.",
  files={"short.key": "abcdefghijABCDEFGHIJ0123456789.\n"}, note="31-character key")
e("sem_key_file_space", "group g {\n host h1.cfg.test;\n key sp.key;\n}\n",
  msg="Unallowed character ' ' in key file $SYSDIR/sp.key.",
  files={"sp.key": "abcdefghijABCDEFGHIJ 0123456789abcdefghij\n"}, note="space in key")
e("sem_key_file_crlf", "group g {\n host h1.cfg.test;\n key cr.key;\n}\n",
  msg="Unallowed character '\r' in key file $SYSDIR/cr.key.",
  files={"cr.key": "abcdefghijABCDEFGHIJ0123456789abcdefghij\r\n"}, note="CRLF key file: the CR is reported raw")
e("sem_key_file_dash", "group g {\n host h1.cfg.test;\n key dash.key;\n}\n",
  msg="Unallowed character '-' in key file $SYSDIR/dash.key.",
  files={"dash.key": "abcdefghijABCDEFGHIJ0123456789-abcdefghij\n"}, note="'-' is not allowed")
e("sem_key_bad_char_at_byte_1023", "group g {\n host h1.cfg.test;\n key long.key;\n}\n",
  msg="Unallowed character '-' in key file $SYSDIR/long.key.",
  files={"long.key": "a" * 1022 + "-\n"}, note="byte 1023 of the first line is still checked")
e("valid_key_only_first_1023_bytes", "group g {\n host h1.cfg.test;\n key long.key;\n}\n", msg=None, exit=2,
  files={"long.key": "a" * 1023 + "-\n"}, note="only the first 1023 bytes of the key line are read")
e("sem_key_of_nonmember_group_missing", G + "group other {\n host h2.cfg.test h3.cfg.test;\n key missing.key;\n}\n",
  msg="Config error: Can't read keyfile $SYSDIR/missing.key.", note="key files of non-member groups are read too")
e("sem_two_auto", "group g {\n host h1.cfg.test;\n key k1.key;\n auto younger;\n auto older;\n}\n",
  msg="Config error: a group might only have one auto-setting.", note="two auto settings")
e("sem_unknown_auto", "group g {\n host h1.cfg.test;\n key k1.key;\n auto Younger;\n}\n",
  msg="Config error: Unknown auto-setting 'Younger' (use 'none', 'younger', 'older', 'bigger', 'smaller', 'left' or 'right').",
  note="auto methods are case-sensitive")
e("sem_unknown_ignore", "ignore uid gid mode;\n" + G, msg="Config error: Unknown 'ignore' porperty: 'mode'.", note="`mode` instead of `mod`")
e("sem_unknown_ignore_several", "ignore foo uid bar mod baz gid;\n" + G,
  msg="Config error: Unknown 'ignore' porperty: 'baz'.", note="several bad words: the last one is reported")
e("sem_prefix_relative", "prefix p {\n on h1.cfg.test: tmp/x;\n}\n" + G,
  msg="Config error: Prefix 'tmp/x' is not an absolute path.", note="relative prefix path")
e("sem_prefix_relative_nonmatching", "prefix p {\n on h1.cfg.test: /tmp;\n on h9.*: rel;\n}\n" + G,
  msg="Config error: Prefix 'rel' is not an absolute path.", note="relative prefix path in a non-matching `on` entry")
e("sem_no_cygwin_lowercase", "no-cygwin-lowercase;\n" + G,
  msg="Config error: Found 'nocygwinlowercase' but this is not a cygwin csync2.", note="`no-cygwin-lowercase;` on Linux")

# ---------------------------------------------------------------- ordering: semantic actions run at reductions
NOKEY = "Config error: Can't read keyfile $SYSDIR/nosuch.key."
BADAUTO = "Config error: Unknown auto-setting 'bad' (use 'none', 'younger', 'older', 'bigger', 'smaller', 'left' or 'right')."
e("ord_key_file_error_without_semicolon", "group g {\n host h1.cfg.test;\n key nosuch.key\n}\n", msg=NOKEY,
  note="the key file is read before the missing `;` is noticed")
e("ord_key_file_error_with_extra_word", "group g {\n host h1.cfg.test;\n key nosuch.key x;\n}\n", msg=NOKEY,
  note="`key A B;` with unreadable A: key error, not syntax error")
e("ord_second_key_checked_before_reading", "group g {\n host h1.cfg.test;\n key k1.key;\n key nosuch.key;\n}\n",
  msg="Config error: a group might only have one key.", note="duplicate key is detected before the second file is read")
e("ord_second_key_without_semicolon", "group g {\n host h1.cfg.test;\n key k1.key;\n key k1.key\n}\n",
  msg="Config error: a group might only have one key.", note="duplicate key reported although `;` is missing")
e("ord_auto_error_with_extra_word", "group g {\n host h1.cfg.test;\n key k1.key;\n auto bad x;\n}\n", msg=BADAUTO,
  note="`auto bad x;`: auto error, not syntax error")
e("ord_auto_error_without_semicolon", "group g {\n host h1.cfg.test;\n key k1.key;\n auto bad\n}\n", msg=BADAUTO,
  note="`auto bad` without `;`")
e("ord_auto_dup_checked_before_validity", "group g {\n host h1.cfg.test;\n key k1.key;\n auto none;\n auto bad;\n}\n",
  msg="Config error: a group might only have one auto-setting.", note="duplicate auto detected before the bad method")
e("ord_auto_invalid_before_missing_key", "group g {\n host h1.cfg.test;\n auto bad;\n key nosuch.key;\n}\n", msg=BADAUTO,
  note="errors in statement order")
e("ord_ignore_error_without_semicolon", "ignore uid bad\n}\n", msg="Config error: Unknown 'ignore' porperty: 'bad'.",
  note="ignore words are checked when the list ends, even on a wrong token")
e("ord_ignore_error_at_eof", G + "ignore bad x\n", msg="Config error: Unknown 'ignore' porperty: 'x'.",
  note="`ignore bad x` at EOF without `;`")
e("ord_prefix_relative_needs_semicolon", "prefix p {\n on h1.cfg.test: rel x;\n}\n" + G,
  "csync2.cfg", 2, SYN.format(2), note="prefix path is checked only when the `on` entry is complete")
e("ord_prefix_relative_before_later_error", "prefix p {\n on h1.cfg.test: /tmp/a;\n on h2: rel;\n ;\n}\n",
  msg="Config error: Prefix 'rel' is not an absolute path.", note="prefix error precedes the later syntax error")
e("ord_no_cygwin_needs_semicolon", G + "no-cygwin-lowercase\n",
  "csync2.cfg", 6, SYN.format(6), note="`no-cygwin-lowercase` at EOF without `;`: syntax error")
e("ord_no_cygwin_before_later_error", G + "no-cygwin-lowercase;\n;\n",
  msg="Config error: Found 'nocygwinlowercase' but this is not a cygwin csync2.", note="statement error precedes later syntax error")
e("syn_multiline_quoted_offending_token", G + "\"x\ny\"\n",
  "csync2.cfg", 5, SYN.format(6),
  note="offending token is a quoted string spanning lines 5-6: true line is where it starts, the real counter says 6")
e("syn_double_colon_in_on", G + "prefix p {\n on h1.cfg.test:: /tmp;\n}\n",
  "csync2.cfg", 6, SYN.format(6), note="`h1.cfg.test::` is word + `:` + `:`")
e("syn_group_name_keyword", "group host {\n host h1.cfg.test;\n key k1.key;\n}\n",
  "csync2.cfg", 1, SYN.format(1), note="keyword as group name")
e("valid_group_name_quoted_keyword", "group \"host\" {\n host h1.cfg.test;\n key k1.key;\n}\n", msg=None, exit=2,
  note="quoted keyword as group name")

# ---------------------------------------------------------------- membership / files
NM = "This host (h1.cfg.test) is not a member of any configured group."
e("mem_not_member", "group g {\n host h2.cfg.test h3.cfg.test;\n key k1.key;\n}\n", msg=NM, note="local host not listed")
e("mem_wildcard_not_member", "group g {\n host h1*;\n key k1.key;\n}\n", msg=NM, note="no wildcards in host names")
e("mem_empty_file", "", msg=NM, key=False, note="empty config file")
e("mem_comments_only", "# nothing\n   # here\n\n", msg=NM, key=False, note="only comments")
e("mem_group_deselected_by_g", G, msg=NM, args=["-G", "other"], note="-G deselects the only group")
e("cfg_missing_file", None, msg="Can not open config file `$SYSDIR/csync2.cfg': No such file or directory", key=False,
  note="no csync2.cfg in the system dir")
e("cfg_missing_named_file", G, msg="Can not open config file `$SYSDIR/csync2_other.cfg': No such file or directory",
  args=["-C", "other"], note="-C other, but only csync2.cfg exists")
e("cfg_bad_name_upper", G, msg="Config names are limited to [a-z0-9]+.", args=["-C", "badName"], note="-C badName")
e("cfg_bad_name_dash", G, msg="Config names are limited to [a-z0-9]+.", args=["-C", "a-b"], note="-C a-b")
e("valid_named_config", None, msg=None, exit=2, args=["-C", "abc1"],
  files={"csync2_abc1.cfg": G}, note="-C abc1 reads csync2_abc1.cfg")

# ---------------------------------------------------------------- includes
def chain(n, last):
    f = {}
    for i in range(1, n + 1):
        f["n%d.cfg" % i] = ("config n%d.cfg;\n" % (i + 1)) if i < n else last
    return f

e("inc_missing_file", "config nosuch.cfg;\n" + G, msg="Can't open included config file 'nosuch.cfg'.", note="include of a missing file")
e("inc_missing_second_file", "config a.cfg nosuch.cfg;\n" + G, msg="Can't open included config file 'nosuch.cfg'.",
  files={"a.cfg": "# a\n"}, note="second file of a multi-file include is missing")
e("inc_nested_11", "config n1.cfg;\n", msg="Config includes nested too deeply.", files=chain(11, G),
  note="11 nested includes below the main file")
e("inc_self_include", "config csync2.cfg;\n", msg="Config includes nested too deeply.", note="self-including file")
e("valid_inc_nested_10", "config n1.cfg;\n", msg=None, exit=2, files=chain(10, G), note="10 nested includes are fine")
e("inc_quoted_name", "config \"a.cfg\";\n" + G, msg="Can't open included config file '\"a.cfg\"'.",
  files={"a.cfg": "# a\n"}, note="quotes are literal in include mode")
e("inc_hash_is_filename", "config a.cfg # comment\n;\n" + G, msg="Can't open included config file '#'.",
  files={"a.cfg": "# a\n"}, stdout="", note="`#` is a file name in include mode")
e("inc_no_semicolon_before_newline", "config a.cfg\n" + G, msg="Can't open included config file 'group'.",
  files={"a.cfg": "# a\n"}, stdout="\n", note="missing `;`: the newline leaks to stdout and `group` is a file name")
e("valid_inc_no_semicolon_at_eof", G + "config a.cfg\n", msg=None, exit=2,
  files={"a.cfg": "# a\n"}, stdout="\n", note="missing `;` at EOF is harmless apart from the newline on stdout")
e("inc_no_semicolon_crlf", "config a.cfg\r\n;" + G + "}\n", "csync2.cfg", 6, SYN.format(5),
  files={"a.cfg": ""}, stdout="\r\n",
  note="CR and LF leak to stdout; the leaked LF is not counted by the real line counter")
e("inc_error_after_include", "config a.cfg;\n" + G + "};\n",
  "csync2.cfg", 6, SYN.format(11), files={"a.cfg": "# 1\n# 2\n# 3\n# 4\n# 5\n"},
  note="cumulative line numbers: real says 11 (6 + 5 newlines of a.cfg), true location csync2.cfg:6")
e("inc_error_after_two_includes", "config a.cfg;\nconfig b.cfg;\n" + G + "\n\n;\n",
  "csync2.cfg", 9, SYN.format(13), files={"a.cfg": "#\n#\n", "b.cfg": "\n\n"},
  note="two includes of two lines each")
e("inc_error_after_nested_include", "config a.cfg;\n\n" + G + "x\n",
  "csync2.cfg", 7, SYN.format(12), files={"a.cfg": "#a\nconfig b.cfg;\n", "b.cfg": "\n\n#b\n"},
  note="a.cfg (2 newlines) includes b.cfg (3 newlines)")
e("inc_error_inside_included_file", "config a.cfg;\n" + G,
  "a.cfg", 3, SYN.format(3), files={"a.cfg": "# included\n\nhost h1.cfg.test;\n"},
  note="syntax error inside the included file")
e("inc_error_inside_included_file_line_offset", "\n\n\nconfig a.cfg;\n" + G,
  "a.cfg", 2, SYN.format(5), files={"a.cfg": "#\n};\n"},
  note="error on line 2 of a.cfg, included from line 4: real reports 5")
e("inc_error_inside_nested_include", "#\nconfig a.cfg;\n",
  "b.cfg", 2, SYN.format(4), files={"a.cfg": "#\nconfig b.cfg;\n", "b.cfg": "\ngroup g { ; }\n"},
  note="error in the second-level include")
e("inc_error_inside_group_include", "group g {\n host h1.cfg.test;\n config body.cfg;\n}\n",
  "body.cfg", 2, SYN.format(4), files={"body.cfg": "key k1.key;\nnossl * *;\n"},
  note="include inside a group body with a top-level statement in it")
e("inc_missing_key_in_include", "config a.cfg;\n" + G, msg=MK,
  files={"a.cfg": "group x {\n host h2.cfg.test;\n}\n"}, note="semantic error inside an included file")
e("inc_no_semicolon_then_error", "config a.cfg\n;\n" + G + "}\n",
  "csync2.cfg", 7, SYN.format(6), files={"a.cfg": ""}, stdout="\n",
  note="leaked newline is not counted: real says 6 for physical line 7")
e("inc_error_at_eof_after_include", "group g {\n host h1.cfg.test;\n key k1.key;\n config a.cfg;\n",
  "csync2.cfg", 5, SYN.format(7), files={"a.cfg": "\n\n"},
  note="EOF inside a group after an include: true location is the main file's EOF line")
e("inc_host_config_word", "config a.cfg;\n",
  "a.cfg", 3, SYN.format(3), files={"a.cfg": "group g {\n host config;\n key k1.key;\n}\n"},
  note="`config` as a host name inside an include")

# ---------------------------------------------------------------- valid but tricky
e("valid_tricky_tokens",
  "# tricky but valid\n"
  "prefix p {\n on h1.cfg.test: /tmp/a/;\n on x : /b;\n}\n"
  "prefix q { }\n"
  "nossl * *;\n"
  "ignore;\n"
  "ignore uid gid mod uid;\n"
  "lock-timeout abc;\n"
  "tempdir /tmp;\n"
  "group g {\n"
  " host h1.cfg.test a@ b c @ d (e f@g) ();\n"
  " host;\n"
  " include /tmp/a:b /a/b#comment\n ;\n"
  " include \"\" \"on\" \"a b\" \"x#y\" \"/tmp/x/\"a.txt;\n"
  " exclude; compare;\n"
  " compare /x /y;\n"
  " key \"k1.key\";\n"
  " auto first;\n"
  " backup-directory /tmp/bak;\n"
  " backup-generations x;\n"
  " action { pattern; exec; exec \"a;b\" c; logfile /dev/null; do-local; do-local-only;}\n"
  " action\n {\n }\n"
  "} group \"my group\" { host h2.cfg.test; key k1.key; } group { key k1.key; }\n",
  msg=None, exit=2, note="many lexer/grammar corner cases that are accepted")
e("valid_crlf", G.replace("\n", "\r\n"), msg=None, exit=2, note="CRLF config")
e("valid_brace_spacing", "group g {\n host h1.cfg.test;\n key k1.key;\n action {\n  exec \"x\";} }\n",
  msg=None, exit=2, note="`;}` and `} }` are fine")
e("valid_empty_include_and_multi", "config;\nconfig a.cfg b.cfg;\n", msg=None, exit=2,
  files={"a.cfg": "group g {\n host h1.cfg.test;\n", "b.cfg": " key k1.key;\n}\n"},
  note="`config;` is a no-op; includes are token substitution (a group split over two files)")
e("valid_key_32_no_newline", "group g {\n host h1.cfg.test;\n key k32.key;\n}\n", msg=None, exit=2,
  files={"k32.key": "abcdefghijABCDEFGHIJ0123456789._"}, note="32-character key without newline")
e("valid_key_second_line_ignored", "group g {\n host h1.cfg.test;\n key k2.key;\n}\n", msg=None, exit=2,
  files={"k2.key": "abcdefghijABCDEFGHIJ0123456789abcdefghij\nthis line is ignored !!\n"}, note="only the first key line matters")
e("valid_database_statement", "database /nonexistent/dir;\n" + G, msg=None, exit=2,
  note="-D overrides the `database` statement")


def esc(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def run_real(d, args):
    t = tempfile.mkdtemp(prefix="cfgerr-")
    sysdir = os.path.join(t, "sys")
    shutil.copytree(d, sysdir)
    os.remove(os.path.join(sysdir, "expect"))
    db = os.path.join(t, "db")
    os.mkdir(db)
    env = dict(os.environ, CSYNC2_SYSTEM_DIR=sysdir)
    p = subprocess.run([REAL, "-N", "h1.cfg.test", "-D", db] + (args or []) + ["-L"],
                       cwd=sysdir, env=env, capture_output=True)
    out = p.stdout.decode("latin-1").replace(sysdir, "$SYSDIR")
    err = p.stderr.decode("latin-1").replace(sysdir, "$SYSDIR")
    shutil.rmtree(t)
    return p.returncode, out, err


bad = 0
os.makedirs(OUT, exist_ok=True)
for old in os.listdir(OUT):
    if os.path.isdir(os.path.join(OUT, old)):
        shutil.rmtree(os.path.join(OUT, old))
for name, x in E.items():
    d = os.path.join(OUT, name)
    os.makedirs(d)
    for fn, content in x["files"].items():
        p = os.path.join(d, fn)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(content.encode("latin-1"))
    with open(os.path.join(d, "expect"), "w") as fh:
        fh.write("")
    rc, out, err = run_real(d, x["args"])
    lines = err.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    msg = lines[0] if lines else None
    problems = []
    if rc != x["exit"]:
        problems.append("exit %d != predicted %d" % (rc, x["exit"]))
    if msg != x["msg"]:
        problems.append("msg %r != predicted %r" % (msg, x["msg"]))
    if len(lines) > 1:
        problems.append("extra stderr lines %r" % lines[1:])
    if out != x["stdout"]:
        problems.append("stdout %r != predicted %r" % (out, x["stdout"]))
    if problems:
        bad += 1
        print("MISMATCH", name, "; ".join(problems))
    with open(os.path.join(d, "expect"), "w") as fh:
        fh.write("# %s\n" % x["note"])
        fh.write("exit: %d\n" % rc)
        if msg is not None:
            fh.write("message: %s\n" % esc(msg))
        if x["file"] is not None:
            fh.write("file: %s\n" % x["file"])
            fh.write("line: %d\n" % x["line"])
        if out:
            fh.write("stdout: %s\n" % esc(out))
        if x["args"]:
            fh.write("args: %s\n" % " ".join(x["args"]))
print(len(E), "entries,", bad, "mismatches")
