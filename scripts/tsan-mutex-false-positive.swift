// ThreadSanitizer reports a data race between two accesses that one Synchronization.Mutex orders,
// once the Mutex is contended (its slow path runs in the uninstrumented Swift runtime).
//   swiftc -sanitize=thread -Onone scripts/tsan-mutex-false-positive.swift -o /tmp/m && /tmp/m
// prints "WARNING: ThreadSanitizer: data race" on Swift 6.3.1 / Linux. Why `make test-tsan` lists
// TSan's reports instead of failing on them.
import Synchronization
import Foundation
final class Obj: @unchecked Sendable { var x = 0 }
final class Box: @unchecked Sendable { let m = Mutex<Obj?>(Obj()) }
let box = Box()
let t1 = Thread { for _ in 0..<2000 { box.m.withLock { $0 = Obj(); usleep(50) } } }
let t2 = Thread { for _ in 0..<2000 { box.m.withLock { _ = $0?.x; usleep(50) } } }
t1.start(); t2.start()
Thread.sleep(forTimeInterval: 3)
print("done")
