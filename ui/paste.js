// Ctrl+V / Cmd+V anywhere on the page: pasted image files go into the upload area, as if dropped there.
document.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
  const input = document.querySelector("#images input[type=file]");
  if (!files.length || !input) return;
  const transfer = new DataTransfer();
  files.forEach((f) => transfer.items.add(f));
  input.files = transfer.files;
  input.dispatchEvent(new Event("change", { bubbles: true }));
  event.preventDefault();
});
