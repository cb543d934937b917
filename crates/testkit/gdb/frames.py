# Every thread's frames as gdb sees them, through gdb's Python API rather than the text of
# `bt` (whose spacing depends on frame numbers and on where in a line the pc is).
#
#   gdb -p PID -batch -nx -x frames.py
#
# Output, one record per line, fields separated by tabs (a C or C++ name holds no tab):
#   thread<TAB>TID                  before the frames of each thread, threads by ascending TID
#   frame<TAB>KIND<TAB>NAME         innermost first; KIND is normal, inline, tailcall, signal,
#                                   or other; NAME is ?? where gdb has no name
#   stop<TAB>MESSAGE                gdb could not go on past the last frame (its error)
#   end                             the last line: everything was listed
# Readers take only lines that start with these words: gdb prints its own messages as well.
import gdb

KINDS = {
    gdb.NORMAL_FRAME: "normal",
    gdb.INLINE_FRAME: "inline",
    gdb.TAILCALL_FRAME: "tailcall",
    gdb.SIGTRAMP_FRAME: "signal",
}


def clean(text):
    return " ".join(str(text).split())


for thread in sorted(gdb.selected_inferior().threads(), key=lambda t: t.ptid[1]):
    thread.switch()
    print("thread\t%d" % thread.ptid[1])
    frame = gdb.newest_frame()
    while frame is not None:
        print("frame\t%s\t%s" % (KINDS.get(frame.type(), "other"), clean(frame.name() or "??")))
        try:
            frame = frame.older()
        except gdb.error as e:
            print("stop\t%s" % clean(e))
            break
print("end")
