// Package ui tests `edgeid ui` end to end: a one-site run of `edgeid up`
// on the real programs, the page loaded in Debian's headless Chromium over
// the DevTools protocol (chromedp), and an SVID rotation seen on the page
// without a reload.
package ui
