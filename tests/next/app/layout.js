// No favicon request (a 404 would show as a console error in the page test).
export const metadata = { title: "pending", icons: { icon: "data:," } };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
