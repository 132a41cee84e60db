// aiscout dashboard: shows each <time datetime="..."> in the reader's time zone. The page works
// without it (times are written in UTC); nothing here reads or writes anything else.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const t = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(t.getTime())) {
      el.title = el.textContent;
      el.textContent = t.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    }
  }
});
