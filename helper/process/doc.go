// Package process runs and supervises the program edgeid-helper serves
// (cmd and cmd_args), and signals a program named by a PID file.
//
// The program starts after the first SVID is on disk. On every rotation the
// Manager either sends renew_signal (for programs that reload, such as
// ghostunnel with SIGUSR1) or, with Restart, stops the program gracefully
// (SIGTERM, a bounded wait, then SIGKILL) and starts it again, for programs
// that cannot reload certificates, such as librdkafka clients. A program
// that exits on its own is started again after an exponential backoff.
//
// One goroutine, Run, owns the child; everything else talks to it through
// channels, so no lock is held while a process starts or stops.
package process
